"""Hooks at each step of a job, and the bus that calls them.

A subscriber overrides the hooks it cares about; every hook's default does nothing. The bus
calls each subscriber in turn and logs, never raises, what one of them raises: a subscriber
(the audit, metrics, live output, ``horus up``'s job lines) can never change what happens
to a job. The steps, in the order a job meets them:

=================  ==========================================================================
``admitted``       a worker accepted the job's signatures and grant (an attempt may start)
``refused``        a delivery was refused: ``reason`` and ``kind`` (signature, policy,
                   invalid, replay, ...); a job refused before any attempt also ``ended``
``started``        an attempt started under a lease: ``attempt``, ``worker``
``output``         the job wrote ``data`` on ``stream`` (``stdout`` / ``stderr``), secrets
                   already masked
``exited``         the attempt's process exited with ``exit_code``
``retried``        the attempt ended and the job is pending again, to start at ``due``
``handed_back``    a stopping worker gave the running job back (it does not count)
``reclaimed``      the sweeper took back a job whose worker stopped renewing its lease
``cancel_requested``  a cancel request was judged: ``accepted`` True or False, ``reason``
``cancel_honoured``   a cancel stopped the job (pending or running)
``ended``          the job reached its final status: ``status`` and ``ending`` (completed,
                   failed, timeout, cancelled, refused or lost), ``duration`` if it ran
=================  ==========================================================================
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

HOOKS = (
    "admitted",
    "refused",
    "started",
    "output",
    "exited",
    "retried",
    "handed_back",
    "reclaimed",
    "cancel_requested",
    "cancel_honoured",
    "ended",
)


@dataclass(frozen=True)
class Event:
    """One step of one job."""

    #: which hook: one of :data:`HOOKS`
    hook: str
    job_id: str
    runner_id: str = ""
    attempt: int = 0
    #: the step's own facts (see the table above)
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)

    def get(self, name: str, default: Any = None) -> Any:
        """One fact of the step."""
        return self.data.get(name, default)


class Subscriber:
    """Base of every subscriber: one documented no-op per hook."""

    def admitted(self, event: Event) -> None:
        """A worker accepted the job's signatures and grant."""

    def refused(self, event: Event) -> None:
        """A delivery of the job was refused."""

    def started(self, event: Event) -> None:
        """An attempt started."""

    def output(self, event: Event) -> None:
        """The job wrote a chunk of output."""

    def exited(self, event: Event) -> None:
        """The attempt's process exited."""

    def retried(self, event: Event) -> None:
        """The attempt ended and the job waits for another."""

    def handed_back(self, event: Event) -> None:
        """A stopping worker gave the job back."""

    def reclaimed(self, event: Event) -> None:
        """The sweeper took back a job whose worker is gone."""

    def cancel_requested(self, event: Event) -> None:
        """A cancel request was judged."""

    def cancel_honoured(self, event: Event) -> None:
        """A cancel stopped the job."""

    def ended(self, event: Event) -> None:
        """The job reached its final status."""


class Bus:
    """Calls every subscriber's hook for each event; a failing subscriber is logged."""

    def __init__(self, subscribers: Iterable[Subscriber] = ()) -> None:
        self.subscribers = list(subscribers)

    def emit(
        self, hook: str, job_id: str, runner_id: str = "", attempt: int = 0, **data: Any
    ) -> None:
        """Tell every subscriber that job ``job_id`` reached step ``hook``."""
        if hook not in HOOKS:
            raise ValueError(f"unknown hook {hook!r}; one of {', '.join(HOOKS)}")
        if not self.subscribers:
            return
        event = Event(hook, job_id, runner_id, attempt, data)
        for subscriber in self.subscribers:
            try:
                getattr(subscriber, hook)(event)
            except Exception as exc:  # one subscriber never changes what happens to a job
                log.error(
                    "event subscriber %s failed on %s of job %s: %s",
                    type(subscriber).__name__,
                    hook,
                    job_id,
                    exc,
                )
