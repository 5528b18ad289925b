"""Limits per grant: a fork bomb, a memory hog, a CPU spinner or a disk filler ends only its
own job, ``failed`` with the reason, and the worker keeps serving."""

from __future__ import annotations

import pytest

from horus.job import JobStatus
from tests.harness import WorkerProcess
from tests.security.conftest import LIMITS, Attacker

FORK_BOMB = """python3 - <<'EOF'
import os, time
n = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        n += 1
except OSError as exc:
    print(f"stopped after {n} processes: {exc}")
    raise SystemExit(1)
EOF"""


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        pytest.param(FORK_BOMB, "Resource temporarily unavailable", id="fork bomb"),
        pytest.param(
            "python3 -c 'x = bytearray(1024 * 1024 * 1024)'", "MemoryError", id="memory hog"
        ),
        pytest.param("while :; do :; done", "cpu_seconds limit", id="cpu spinner"),
        pytest.param("head -c 20M /dev/zero > big", "file_mb limit", id="one big file"),
        pytest.param(
            "for i in 1 2 3 4 5; do head -c 3M /dev/zero > f$i; done; sleep 20",
            "workdir_mb limit",
            id="many files",
        ),
    ],
)
def test_a_job_over_a_limit_of_its_grant_fails_with_the_reason_and_the_worker_serves_on(
    attacker: Attacker, workers: dict[str, WorkerProcess], script: str, reason: str
) -> None:
    result = attacker.run(script, context_id=LIMITS)
    assert result.status is JobStatus.FAILED
    said = f"{result.output}\n{result.error}"
    assert reason in said, said
    if "fork" in script:
        assert int(result.output.split()[2]) < 32  # the grant's processes = 32
    assert attacker.run("echo serving").output == "serving\n"


def test_output_over_the_grants_cap_is_cut_and_a_secret_it_cuts_stays_masked(
    attacker: Attacker, workers: dict[str, WorkerProcess]
) -> None:
    secret = "s3cr3t-token-value"
    job = attacker.job("head -c 1018 /dev/zero | tr '\\0' a; echo $TOKEN", context_id=LIMITS)
    job_id = attacker.client.submit(job, secrets={"TOKEN": secret})
    result = attacker.client.wait(job_id, timeout=30)
    assert result.output_truncated
    assert result.output.startswith("a" * 1018)
    assert "s3cr3t" not in result.output
    assert "s3cr" not in result.output
