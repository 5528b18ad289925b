"""Metrics: counts the job events into the store (:class:`MetricsRecorder`, a subscriber)
and shows them to Prometheus (:class:`StoreCollector`), aggregated over every worker on
every machine because the counts live in the store.

======================================  ===================================================
``horus_jobs_total{runner,status}``      jobs that ended: completed, failed, timeout,
                                         cancelled, refused, lost (each its own)
``horus_job_duration_seconds{runner}``   how long the jobs that ran took (histogram)
``horus_refusals_total{runner,reason}``  refused deliveries by kind (trust, invalid, replay,
                                         expired, message, runner, no-record, secrets, ...)
``horus_steps_total{runner,step}``       retried, reclaimed and handed-back attempts
``horus_queued_jobs{runner}``            pending jobs (waiting in a queue or for a retry)
``horus_running_jobs{runner}``           running jobs
``horus_metrics_store_up``               1 when the counts could be read
======================================  ===================================================

``horus up`` serves them on ``127.0.0.1:9464`` (``--metrics-port``); ``horus metrics``
prints them once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from horus import registry as plugins
from horus.events import Event, Subscriber
from horus.store import keys, workers
from horus.store.records import Store

#: upper bounds of the duration histogram's buckets, in seconds
BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, math.inf)
JOBS, REFUSALS, STEPS = keys.metrics("jobs"), keys.metrics("refusals"), keys.metrics("steps")
#: counts the jobs in the intersection of two indexes (one status, one runner) atomically
_INTERSECTION = """
local n = redis.call('ZINTERSTORE', KEYS[3], 2, KEYS[1], KEYS[2])
redis.call('DEL', KEYS[3])
return n
"""


def _le(bound: float) -> str:
    return "+Inf" if bound == math.inf else repr(bound)


class MetricsRecorder(Subscriber):
    """Counts each ending, refusal and recovery step in the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _count(self, *increments: tuple[str, str]) -> None:
        with self.store.reach():
            pipe = self.store.redis.pipeline(transaction=False)
            for key, field in increments:
                pipe.hincrby(key, field, 1)
            pipe.execute()

    def ended(self, event: Event) -> None:
        """One job more in its runner's final status; its duration if it ran."""
        ending = str(event.get("ending") or event.get("status"))
        duration = event.get("duration")
        with self.store.reach():
            pipe = self.store.redis.pipeline(transaction=False)
            pipe.hincrby(JOBS, f"{event.runner_id}|{ending}", 1)
            if isinstance(duration, int | float):
                histogram = keys.metrics(f"duration:{event.runner_id}")
                bound = next(b for b in BUCKETS if duration <= b)
                pipe.hincrby(histogram, _le(bound), 1)
                pipe.hincrbyfloat(histogram, "sum", float(duration))
            pipe.execute()

    def refused(self, event: Event) -> None:
        """One refusal more, by kind."""
        self._count((REFUSALS, f"{event.runner_id}|{event.get('kind', 'other')}"))

    def retried(self, event: Event) -> None:
        """One retry more."""
        self._count((STEPS, f"{event.runner_id}|retried"))

    def reclaimed(self, event: Event) -> None:
        """One reclaim more."""
        self._count((STEPS, f"{event.runner_id}|reclaimed"))

    def handed_back(self, event: Event) -> None:
        """One hand-back more."""
        self._count((STEPS, f"{event.runner_id}|handed_back"))


def _pairs(counts: dict[str, str]) -> Iterator[tuple[list[str], float]]:
    for field, value in sorted(counts.items()):
        runner, _, label = field.partition("|")
        yield [runner, label], float(value)


class StoreCollector(Collector):
    """Reads the counts from the store at each scrape. Queue depth and running jobs are
    shown for every runner installed here, served by a live worker or seen in the counts,
    as of that scrape."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.installed = set(plugins.installed().runners)
        self._intersection = store.redis.register_script(_INTERSECTION)

    def describe(self) -> list[Any]:
        """The names, so that registering reads nothing."""
        return []

    def collect(self) -> Iterator[Any]:
        """Every metric of the table above."""
        up = GaugeMetricFamily("horus_metrics_store_up", "1 when the counts could be read")
        try:
            families = list(self._families())
        except (redis.RedisError, OSError):
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self) -> Iterator[Any]:
        r = self.store.redis
        jobs, refusals, steps = r.hgetall(JOBS), r.hgetall(REFUSALS), r.hgetall(STEPS)
        for name, doc, label, counts in (
            ("horus_jobs", "Jobs that ended, by final status", "status", jobs),
            ("horus_refusals", "Refused deliveries, by kind", "reason", refusals),
            ("horus_steps", "Retried, reclaimed and handed-back attempts", "step", steps),
        ):
            family = CounterMetricFamily(name, doc, labels=["runner", label])
            for labels, value in _pairs(counts):
                family.add_metric(labels, value)
            yield family
        seen = {f.partition("|")[0] for f in jobs}
        runners = sorted(self.installed | workers.served(self.store) | seen)
        histogram = HistogramMetricFamily(
            "horus_job_duration_seconds", "How long jobs ran", labels=["runner"]
        )
        for runner in runners:
            counts = r.hgetall(keys.metrics(f"duration:{runner}"))
            if not counts:
                continue
            running_total, buckets = 0.0, []
            for bound in BUCKETS:
                running_total += float(counts.get(_le(bound), 0))
                buckets.append((_le(bound), running_total))
            histogram.add_metric([runner], buckets, float(counts.get("sum", 0)))
        yield histogram
        for status, name, doc in (
            ("pending", "horus_queued_jobs", "Pending jobs: queued or waiting for a retry"),
            ("running", "horus_running_jobs", "Running jobs"),
        ):
            gauge = GaugeMetricFamily(name, doc, labels=["runner"])
            for runner in runners:
                index = [keys.status_index(status), keys.runner_index(runner), keys.metrics("tmp")]
                gauge.add_metric([runner], float(self._intersection(keys=index)))
            yield gauge


def registry_for(store: Store) -> CollectorRegistry:
    """A Prometheus registry holding only the Horus metrics of ``store``."""
    registry = CollectorRegistry()
    registry.register(StoreCollector(store))
    return registry
