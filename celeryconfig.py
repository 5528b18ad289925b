"""Celery's conventional settings module, for tools that expect one (``celery -A``,
``--config celeryconfig``): the same configuration Horus builds for its own app from the
environment (see :mod:`horus.config` and :func:`horus.messaging.app.celery_settings`)."""

from __future__ import annotations

from horus import config
from horus.messaging.app import celery_settings

globals().update(celery_settings(config.load()))
