"""A record jobs cannot forge, and that shows it when the store was changed after the fact:
each result is signed by the worker that produced it, and the audit is a hash chain."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import pytest

from horus.client import Client
from horus.errors import NotAllowed
from horus.job import Job
from horus.store import keys as store_keys
from horus.store.audit import STREAM, Audit, AuditBroken
from horus.store.records import Store
from tests.harness import WorkerProcess, run_horus
from tests.security.conftest import SETTINGS


def test_a_result_is_signed_by_its_worker_and_a_changed_one_is_caught(
    client: Client, workers: dict[str, WorkerProcess]
) -> None:
    job_id = client.submit(Job.new("shell", "echo genuine"))
    client.wait(job_id, timeout=30)
    assert client.verify_result(job_id) == client.gate.secrets_key()
    shown = run_horus("result", job_id, "--verify")
    assert shown.returncode == 0, shown.stderr
    assert "verified" in shown.stderr
    assert "genuine" in shown.stdout
    # someone with write access to the store changes the output
    key = store_keys.job(job_id)
    stored = json.loads(client.store.redis.hget(key, "result") or "{}")
    client.store.redis.hset(key, "result", json.dumps({**stored, "output": "forged\n"}))
    with pytest.raises(NotAllowed, match="changed after its worker signed it"):
        client.verify_result(job_id)
    refused = run_horus("result", job_id, "--verify")
    assert refused.returncode != 0
    assert "changed after its worker signed it" in refused.stderr
    assert "forged" not in refused.stdout


def test_the_audit_chain_names_the_first_entry_changed_or_removed() -> None:
    # an audit of its own (another database of the embedded Redis): the session's stays whole
    settings = replace(SETTINGS, result_backend=f"{SETTINGS.embedded_url}?db=5")
    store = Store(settings)
    store.redis.flushdb()
    audit = Audit(store)
    for n in range(6):
        audit.record(f"job-{n}", "run", "accepted", runner_id="shell")
    checked = audit.verify()
    assert (checked.entries, checked.first, checked.last) == (6, 1, 6)
    rows = store.redis.xrange(STREAM)
    # changed: entry 3 says refused (a stream cannot be edited in place: entries 3 to 6 are
    # deleted and added back, 3 with the new text)
    for stream_id, _ in rows[2:]:
        store.redis.xdel(STREAM, stream_id)
    forged = {**rows[2][1], "entry": rows[2][1]["entry"].replace("accepted", "refused")}
    for fields in [forged, *(f for _, f in rows[3:])]:
        store.redis.xadd(STREAM, fields)
    with pytest.raises(AuditBroken, match=r"entry 3 \(.*\) was changed"):
        audit.verify()
    # removed: entry 5 of a whole chain
    store.redis.flushdb()
    for n in range(6):
        audit.record(f"job-{n}", "run", "accepted", runner_id="shell")
    store.redis.xdel(STREAM, store.redis.xrange(STREAM)[4][0])
    with pytest.raises(AuditBroken, match="entries 5 to 5 were removed"):
        audit.verify()
    env = {**os.environ, "HORUS_RESULT_BACKEND": settings.result_backend}
    shown = run_horus("audit", "verify", env=env)
    assert shown.returncode != 0
    assert "entries 5 to 5 were removed" in shown.stderr
    store.redis.flushdb()


def test_horus_audit_verify_passes_on_the_real_trail(
    client: Client, workers: dict[str, WorkerProcess]
) -> None:
    client.wait(client.submit(Job.new("shell", "true")), timeout=30)
    shown = run_horus("audit", "verify")
    assert shown.returncode == 0, shown.stderr
    assert "the audit holds" in shown.stdout
