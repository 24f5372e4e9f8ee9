"""Celery bound to the Flask app: every task runs inside an app context (pallets' pattern)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import Celery, Task
from flask import Flask

from backend.config import Settings
from backend.core.broker import is_embedded, prepare_embedded, transport_settings


def celery_config(settings: Settings) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "broker_url": settings.celery_broker_url,
        "result_backend": settings.celery_result_backend,
        "task_always_eager": settings.celery_always_eager,
        "task_acks_late": True,  # a task killed mid-way runs again: tasks are idempotent
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_expires": timedelta(days=1),
        # Nothing reads a task's return value: the work's state is in the database. Kept, each
        # result was one more write to the result backend per task (beat sends some every 2 s),
        # and each send from a web process subscribed to a Redis channel for a result nobody
        # waits for (send_task too: see PlatformCelery). A caller that wants one asks with
        # apply_async(ignore_result=False).
        "task_ignore_result": True,
        "broker_connection_retry_on_startup": True,
        "beat_schedule": {
            "core.record_heartbeat": {
                "task": "core.record_heartbeat",
                "schedule": timedelta(seconds=15),
            },
        },
    }
    conf.update(transport_settings(settings.celery_broker_url))
    if is_embedded(settings.celery_broker_url):
        conf["beat_schedule"]["core.purge_broker"] = {
            "task": "core.purge_broker",
            "schedule": timedelta(minutes=1),
        }
    return conf


class PlatformCelery(Celery):  # type: ignore[misc]
    """Celery whose `send_task` follows `task_ignore_result` as a task's `apply_async` does:
    Celery's own subscribes to the task's result unless each call says ignore_result=True."""

    def send_task(self, name: str, *args: Any, **options: Any) -> Any:
        options.setdefault("ignore_result", self.conf.task_ignore_result)
        return super().send_task(name, *args, **options)


def celery_init_app(app: Flask, settings: Settings) -> Celery:
    class FlaskTask(Task):  # type: ignore[misc]
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    prepare_embedded(settings.celery_broker_url)
    celery_app = PlatformCelery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(celery_config(settings))
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app
