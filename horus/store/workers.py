"""The registry of live workers: each announces itself and the runners it serves, so a
runner installed only on worker machines is still known at enqueue, and ``horus runners``
shows who serves what."""

from __future__ import annotations

import json
import time
from typing import Any

from horus.store import keys
from horus.store.records import Store

#: seconds after its last heartbeat that a worker counts as gone
WORKER_TTL = 30


def heartbeat(store: Store, worker: str, runners: list[str], info: dict[str, Any]) -> None:
    """Announce a live worker and the runners it serves."""
    now = time.time()
    with store.reach():
        pipe = store.redis.pipeline(transaction=False)
        pipe.set(keys.worker(worker), json.dumps({"runners": runners, **info}), ex=WORKER_TTL)
        pipe.zadd(keys.WORKERS, {worker: now})
        pipe.zremrangebyscore(keys.WORKERS, "-inf", now - WORKER_TTL)
        pipe.execute()


def forget(store: Store, worker: str) -> None:
    """Remove a worker that is shutting down."""
    with store.reach():
        store.redis.delete(keys.worker(worker))
        store.redis.zrem(keys.WORKERS, worker)


def live(store: Store) -> dict[str, dict[str, Any]]:
    """Workers seen in the last :data:`WORKER_TTL` seconds, with their runners."""
    with store.reach():
        names = store.redis.zrangebyscore(keys.WORKERS, time.time() - WORKER_TTL, "+inf")
        if not names:
            return {}
        values = store.redis.mget([keys.worker(n) for n in names])
    return {n: json.loads(v) for n, v in zip(names, values, strict=True) if v}


def served(store: Store) -> set[str]:
    """The runners that live workers serve."""
    return {str(r) for info in live(store).values() for r in info.get("runners", [])}
