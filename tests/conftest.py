"""Test setup: every test run gets its own HORUS_HOME and its own embedded Redis.

HORUS_HOME is set before Horus is imported, so the product's default path (no broker
configured, the embedded Redis) is the one under test, as on a newcomer's machine.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

HOME = Path(tempfile.mkdtemp(prefix="horus-t-", dir="/tmp"))
os.environ["HORUS_HOME"] = str(HOME)
for _name in ("HORUS_BROKER_URL", "HORUS_RESULT_BACKEND"):
    os.environ.pop(_name, None)

import pytest  # noqa: E402

from horus import config  # noqa: E402
from horus.client import Client  # noqa: E402
from horus.services.embedded import EmbeddedRedis  # noqa: E402
from horus.trust import bootstrap  # noqa: E402
from tests.harness import JOB_FILES, WorkerProcess, grant_job_files, job_dir  # noqa: E402

#: set in the shell worker's own environment; a job must never see it
WORKER_SECRET = "worker-secret-never-in-a-job"


@pytest.fixture(scope="session")
def embedded_redis() -> Iterator[EmbeddedRedis]:
    """The embedded Redis, started the way `horus up` starts it."""
    settings = config.load()
    bootstrap.init(settings)  # the keys and policy `horus up` makes on a first run
    policy = settings.policy_path
    policy.write_text(grant_job_files(policy.read_text()))
    server = EmbeddedRedis(settings.home, settings.embedded_socket)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(HOME, ignore_errors=True)
    shutil.rmtree(JOB_FILES, ignore_errors=True)


@pytest.fixture
def tmp_path(request: pytest.FixtureRequest) -> Path:
    """A directory of the test's own that its sandboxed jobs may write too."""
    return job_dir(request.node.name)


@pytest.fixture(scope="session")
def client(embedded_redis: EmbeddedRedis) -> Client:
    """A Horus client on the embedded Redis."""
    return Client()


@pytest.fixture(scope="session")
def workers(embedded_redis: EmbeddedRedis) -> Iterator[dict[str, WorkerProcess]]:
    """Real worker processes: shell with concurrency 1 (so a busy worker is easy to make),
    python with concurrency 2."""
    started: dict[str, WorkerProcess] = {}
    try:
        # these workers send Flower's task events (test_flower watches them)
        events = {"HORUS_TASK_EVENTS": "1"}
        started["shell"] = WorkerProcess(
            ["shell"], 1, {"WORKER_SECRET": WORKER_SECRET, **events}
        ).start()
        started["python"] = WorkerProcess(["python"], 2, events).start()
        yield started
    finally:
        for worker in started.values():
            worker.stop()
