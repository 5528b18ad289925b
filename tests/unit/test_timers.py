"""The worker's event-loop timer keeps only timers still to fire: Celery cancels each job's
time-limit timer as the job ends, and kombu would otherwise hold every one of them in its
heap for the day the limit lasts (the worker's memory grew with every job)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from kombu.asynchronous import Hub
from kombu.asynchronous.timer import Timer

from horus.execution import boot, timers

DAY = 86_400.0


def test_cancelled_timers_leave_the_heap_and_the_live_ones_still_fire_in_order() -> None:
    timer = Timer()
    fired: list[int] = []
    live = [timer.call_after(0.001 * n, fired.append, (n,)) for n in (3, 1, 2)]
    dead = [timer.call_after(DAY, fired.append, (-1,)) for _ in range(1000)]
    for entry in dead:
        timer.cancel(entry)
    assert timers.drop_cancelled(timer) == 1000
    assert len(timer) == len(live)
    time.sleep(0.01)
    schedule = iter(timer)
    for _ in live:
        _, due = next(schedule)  # due: the entry itself, no wait
        assert due is not None
        timer.apply_entry(due)
    assert fired == [1, 2, 3]
    assert timers.drop_cancelled(timer) == 0


def test_a_started_worker_drops_cancelled_timers_from_its_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(timers, "COMPACT_EVERY", 0.01)
    hub = Hub(Timer())
    boot._compact_timers(sender=SimpleNamespace(hub=hub))  # as worker_ready calls it
    for _ in range(500):  # the time limits of 500 jobs that ended
        hub.timer.cancel(hub.call_later(DAY, print))
    kept = hub.call_later(DAY, print)
    time.sleep(0.05)
    hub.fire_timers(propagate=(Exception,))
    queued = [item[2] for item in hub.timer._queue]
    assert kept in queued
    assert len(queued) == 2  # the live timer and the compaction's own next turn


def test_a_timer_of_another_shape_is_left_alone() -> None:
    assert timers.drop_cancelled(SimpleNamespace()) == 0
    boot._compact_timers(sender=SimpleNamespace())  # no event loop: nothing to do
