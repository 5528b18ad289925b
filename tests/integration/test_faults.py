"""The short fault-injection run (benchmarks/faults.py --short), on Redis and on RabbitMQ:
0 jobs lost and 0 effects duplicated under every fault."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.harness import REPO
from tests.integration.test_external_brokers import need

pytestmark = pytest.mark.integration


@pytest.mark.timeout(600)
@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_no_job_is_lost_or_runs_its_effect_twice_under_faults(broker: str) -> None:
    if broker == "rabbitmq":
        need(5672, "amqp")
    done = subprocess.run(
        [sys.executable, "benchmarks/faults.py", "--short", "--broker", broker],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=590,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    rows = done.stdout.splitlines()
    faults = {"pool-kill", "worker-kill", "store-kill", "proxy-drop", "poison"}
    if broker == "redis":
        faults |= {"broker-restart", "visibility"}
    assert {row.split()[0] for row in rows} == faults
    assert all(" lost 0 " in row and " duplicated 0 " in row for row in rows), done.stdout
    poison = next(row for row in rows if row.startswith("poison"))
    assert "poison: failed after 3 attempts" in poison
