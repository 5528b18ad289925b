from __future__ import annotations

import time
import uuid
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


def test_exp(client: Client, workers: dict[str, WorkerProcess]) -> None:
    key = keys.load(config.load().key_path)
    home = config.load().home
    out: dict[str, Any] = {}
    # (a) python job on shell queue
    j = signing.sign(Job.model_validate({"runner_id": "python", "payload": "os:mkdir", "params": {"path": str(home / "py-canary")}}), key)
    client.store.create(j)
    app.send_task(TASK_NAME, args=[j.model_dump_json()], task_id=j.id, queue=queue_for("shell"), routing_key=queue_for("shell"))
    # (b) arity
    j2 = signing.sign(Job.new("shell", f"touch {home}/ar"), key)
    client.store.create(j2)
    app.send_task(TASK_NAME, args=[j2.model_dump_json(), "extra"], task_id=j2.id, queue=queue_for("shell"), routing_key=queue_for("shell"))
    j3 = signing.sign(Job.new("shell", f"touch {home}/ar3"), key)
    client.store.create(j3)
    app.send_task(TASK_NAME, args=[], kwargs={"msg": j3.model_dump_json()}, task_id=j3.id, queue=queue_for("shell"), routing_key=queue_for("shell"))
    # (c) raw lpush
    r = client.store.redis
    for item in [b"\xff\xfe garbage", b"not json", b"[]", b"{}", b'"x"', b"null"]:
        r.lpush(queue_for("shell"), item)
    time.sleep(3)
    res = client.run_job_and_await_result(Job.new("shell", "echo ok"), timeout=30)
    print("after", res.status, res.output)
    for jj in (j, j2, j3):
        print(jj.id, client.store.get(jj.id).status, client.store.get(jj.id).result, Audit(client.store).entries(jj.id))
    print("py canary", (home / "py-canary").exists())
    print(workers["shell"].log.read_text()[-6000:])
