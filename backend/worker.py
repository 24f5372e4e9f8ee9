"""Celery entry point: `celery -A backend.worker worker` and `celery -A backend.worker beat`.

A worker started from here also runs the block watcher (backend/chain/block_watcher.py): new
blocks are indexed and receipts settled within BLOCK_WATCH_INTERVAL, not at the beat's ticks.
"""

from backend import create_app
from backend.chain.block_watcher import install as install_block_watcher

flask_app = create_app()
celery = flask_app.extensions["celery"]
install_block_watcher(celery, flask_app)
