"""The Celery app. Settings come from ``celeryconfig``; no business logic lives here."""

from __future__ import annotations

from celery import Celery

app = Celery("horus", include=["horus.tasks"])
app.config_from_object("celeryconfig")
