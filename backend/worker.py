"""Celery entry point: `celery -A backend.worker worker` and `celery -A backend.worker beat`."""

from backend import create_app

flask_app = create_app()
celery = flask_app.extensions["celery"]
