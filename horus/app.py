"""The Celery app. Settings come from ``celeryconfig``; no business logic lives here."""

from __future__ import annotations

from celery import Celery

from horus import transport

transport.install()  # a garbage item on a Redis queue must not stop a worker
app = Celery("horus", include=["horus.tasks"])
app.config_from_object("celeryconfig")
