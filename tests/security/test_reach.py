"""What a job admitted under the limited grant cannot read or write: the keys, the policy,
the worker's environment, another job's files and secrets, the job store and the audit."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from horus.client import Client
from horus.errors import NotAllowed
from horus.job import JobStatus, parse_job
from horus.store import keys as store_keys
from tests.conftest import WORKER_SECRET
from tests.harness import WorkerProcess, wait_until, workdir_of
from tests.security.conftest import SETTINGS, Attacker


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_job_cannot_read_any_key_or_the_policy(
    attacker: Attacker, workers: dict[str, WorkerProcess], tmp_path: Path
) -> None:
    secrets = [SETTINGS.key_path, SETTINGS.worker_key_path, SETTINGS.policy_path]
    canary = tmp_path / "stolen"
    reads = "; ".join(f"cat {p} >> {canary} 2>/dev/null" for p in secrets)
    hunt = f"find / -xdev -name '*.key' -exec cat {{}} + >> {canary} 2>/dev/null"
    result = attacker.run(f"{reads}; {hunt}; ls -a {SETTINGS.home} >> {canary}; echo ran")
    assert result.status is JobStatus.COMPLETED
    assert result.output == "ran\n"
    stolen = canary.read_text() if canary.exists() else ""
    for path in secrets:
        assert path.read_text().strip() not in stolen
    assert "policy.toml" not in stolen
    assert "keys" not in stolen


def test_a_job_cannot_rewrite_the_policy(
    attacker: Attacker, workers: dict[str, WorkerProcess], tmp_path: Path
) -> None:
    before = digest(SETTINGS.policy_path)
    widen = '[[grants]]\\nwho = ["*"]\\nrunners = ["*"]\\nunsigned = true\\n'
    result = attacker.run(
        f"printf '{widen}' >> {SETTINGS.policy_path} && touch {tmp_path}/widened; echo ran"
    )
    assert result.output == "ran\n"
    assert not (tmp_path / "widened").exists()
    assert digest(SETTINGS.policy_path) == before


def test_a_job_cannot_read_the_workers_environment_or_processes(
    attacker: Attacker, workers: dict[str, WorkerProcess], tmp_path: Path
) -> None:
    worker = workers["shell"].proc
    assert worker is not None
    canary = tmp_path / "environ"
    result = attacker.run(
        f"cat /proc/{worker.pid}/environ /proc/*/environ > {canary} 2>/dev/null; "
        f"ls /proc | grep -c '^[0-9]' > {tmp_path}/count; env >> {canary}; echo ran"
    )
    assert result.output == "ran\n"
    assert WORKER_SECRET not in canary.read_text()
    # the job sees its own processes only: its sandbox's init, its shell and a few more
    assert int((tmp_path / "count").read_text()) < 10


def test_a_job_cannot_see_another_jobs_working_directory(
    attacker: Attacker, workers: dict[str, WorkerProcess], tmp_path: Path
) -> None:
    # the other job: a python job of the local key, holding a file in its workdir
    other = Client()  # the local key
    other_id = other.submit(
        parse_job({"runner_id": "python", "payload": "asyncio:sleep", "params": {"delay": 8}})
    )
    assert wait_until(lambda: workdir_of(other_id), 20)
    workdir = workdir_of(other_id)
    assert workdir is not None
    (workdir / "its-file").write_text("the other job's")
    canary = tmp_path / "seen"
    result = attacker.run(
        f"ls -d /tmp/horus-* > {canary} 2>/dev/null; ls {workdir} >> {canary} 2>/dev/null;"
        f" cat {workdir}/its-file >> {canary} 2>/dev/null; echo ran"
    )
    assert result.output == "ran\n"
    seen = canary.read_text()
    assert workdir.name not in seen  # (its own workdir it may see)
    assert "the other job's" not in seen
    assert other.get_job_status(other_id) is JobStatus.RUNNING  # it was there to be seen
    other.cancel_job(other_id)


def test_a_job_cannot_open_another_jobs_sealed_secret(
    attacker: Attacker, workers: dict[str, WorkerProcess], tmp_path: Path
) -> None:
    victim = Client()  # the local key
    victim_id = victim.submit(
        parse_job({"runner_id": "shell", "payload": "true"}),
        secrets={"TOKEN": "victims-token-123"},
    )
    sealed = victim.get_job(victim_id).job.secrets
    # the attacker copies the sealed box into a job of its own that prints it
    stolen = attacker.job(f"echo $TOKEN > {tmp_path}/token")
    stolen = parse_job({**stolen.model_dump(), "secrets": sealed})
    job_id = attacker.client.submit(stolen)
    result = attacker.client.wait(job_id, timeout=30)
    assert result.status is JobStatus.FAILED
    assert "sealed for another job" in (result.error or "")
    assert not (tmp_path / "token").exists()


def test_a_job_cannot_write_the_job_store_or_the_audit(
    attacker: Attacker, workers: dict[str, WorkerProcess], tmp_path: Path
) -> None:
    store = attacker.client.store
    audit_before = store.redis.xlen(store_keys.AUDIT)
    cli = Path(sys.executable).with_name("redis-cli")  # the venv's, visible read-only
    record = store_keys.job("$HORUS_JOB_ID")
    forge = (
        f"for c in '{cli} -s {SETTINGS.embedded_socket}' '{cli} -h 127.0.0.1'; do "
        f"$c HSET {record} status completed > /dev/null 2>&1 && touch {tmp_path}/wrote; "
        f"$c DEL {store_keys.AUDIT} > /dev/null 2>&1 && touch {tmp_path}/wrote; "
        "done; "
        f'python3 -c "import socket; s=socket.socket(socket.AF_UNIX); '
        f"s.connect('{SETTINGS.embedded_socket}'); open('{tmp_path}/wrote','w')\" 2>/dev/null; "
        "echo ran; exit 3"
    )
    result = attacker.run(forge)
    assert result.output == "ran\n"
    assert result.status is JobStatus.FAILED
    assert result.exit_code == 3
    assert not (tmp_path / "wrote").exists()
    assert store.redis.xlen(store_keys.AUDIT) >= audit_before


def test_the_limited_key_cannot_run_outside_its_grant(
    attacker: Attacker, workers: dict[str, WorkerProcess], tmp_path: Path
) -> None:
    for fields in ({"context_id": "prod"}, {"timeout": 3600}):
        job = parse_job({**attacker.job(f"touch {tmp_path}/ran").model_dump(), **fields})
        # refused before it is sent (the worker's own refusal of the same job sent past the
        # client is tests/integration/test_trust.py's)
        with pytest.raises(NotAllowed, match="grant"):
            attacker.client.submit(job)
    assert not (tmp_path / "ran").exists()
