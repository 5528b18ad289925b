"""The public API: what runner authors and clients import from `horus`, and that importing
it builds nothing and reads no environment."""

from __future__ import annotations

import ast
import subprocess
import sys

import horus
from tests.harness import REPO

CONTRACT = {"Runner", "RunContext", "Outcome", "OutputSink", "NoParams", "NoConfig", "Example"}
CLIENT = {"Client", "Job", "JobBuilder", "JobResult", "JobStatus", "Record", "Signature"}


def test_the_public_api_holds_the_contract_the_client_and_every_error() -> None:
    names = set(horus.__all__)
    assert names >= CONTRACT | CLIENT
    errors = {n for n in names if isinstance(getattr(horus, n), type)}
    for name in errors:
        obj = getattr(horus, name)
        if issubclass(obj, Exception):
            assert issubclass(obj, horus.HorusError), name
    every_error = {c.__name__ for c in _subclasses(horus.HorusError)} - {"Refusal"}
    assert every_error <= names


def _subclasses(cls: type[Exception]) -> set[type[Exception]]:
    found: set[type[Exception]] = set()
    sub: type[Exception]
    for sub in cls.__subclasses__():
        if sub.__module__.startswith("horus.errors"):
            found |= {sub} | _subclasses(sub)
    return found | {cls}


PROBE = """
import os, sys
import celery._state
os.environ["HORUS_HOME"] = "/first"
import horus
assert not list(celery._state._apps), "importing horus built a Celery app"
os.environ["HORUS_HOME"] = "/second"
from horus import config
assert str(config.load().home) == "/second", "a setting was read at import"
print("ok")
"""


def test_importing_horus_builds_no_celery_app_and_reads_the_environment_only_when_asked() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.stdout == "ok\n", done.stderr


def test_runners_written_against_the_public_api_import_only_from_horus() -> None:
    """The first-party runners and the third-party test runner import nothing of Horus's
    internals: what a runner author needs is in `horus`."""
    sources = [*REPO.glob("runners/*/horus_*/*.py"), REPO / "tests/plugins/horus_echo.py"]
    assert len(sources) >= 3
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("horus."), f"{source}: from {node.module}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("horus."), f"{source}: import {alias.name}"
