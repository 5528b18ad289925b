from __future__ import annotations

import time
from typing import Any

import pytest

from horus import config, keys, signing
from horus.app import app
from horus.audit import Audit
from horus.client import Client
from horus.job import Job
from horus.routing import TASK_NAME, queue_for
from tests.harness import WorkerProcess

pytestmark = pytest.mark.integration


def serving(client: Client, workers: dict[str, WorkerProcess], what: str) -> None:
    try:
        res = client.run_job_and_await_result(Job.new("shell", "echo ok"), timeout=8)
        print(what, "-> serving", res.status)
    except TimeoutError:
        print(what, "-> NOT SERVING; llen", client.store.redis.llen(queue_for("shell")))
        print(workers["shell"].log.read_text()[-5000:])
        raise


@pytest.mark.parametrize("item", [b"\xff\xfe garbage", b"not json", b"[]", b"{}", b'"x"', b"null"])
def test_exp(client: Client, workers: dict[str, WorkerProcess], item: bytes) -> None:
    r = client.store.redis
    r.lpush(queue_for("shell"), item)
    serving(client, workers, repr(item))
