"""Which subscribers hear the job events in every Horus process (worker, sweeper, client):
the one place that decides it. Each is a :class:`horus.events.Subscriber`."""

from __future__ import annotations

from horus.events import Bus
from horus.services.metrics import MetricsRecorder
from horus.store.audit import Audit, AuditTrail
from horus.store.feed import JobFeed
from horus.store.output import OutputStream
from horus.store.records import Store


def default_bus(store: Store) -> Bus:
    """The audit trail, the live output stream, the metrics and the job feed, on ``store``."""
    return Bus(
        [AuditTrail(Audit(store)), OutputStream(store), MetricsRecorder(store), JobFeed(store)]
    )
