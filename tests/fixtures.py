"""Callables the python-runner tests submit (importable by the worker's child process)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any


def add(a: int, b: int) -> dict[str, int]:
    """Return the sum, and print something (prints go to the error stream)."""
    print("adding", a, b)
    return {"sum": a + b}


async def run() -> dict[str, Any]:
    """Seed 003's shape: an async job returning a dict."""
    await asyncio.sleep(0.01)
    return {"status": "success", "rows_processed": 3}


def explode(message: str = "boom") -> None:
    """Fail with an exception whose traceback should reach the result."""
    raise RuntimeError(message)


def environment() -> dict[str, str]:
    """The environment the job sees."""
    return dict(os.environ)


def not_json() -> object:
    """Return something that JSON cannot carry."""
    return object()


def _age() -> float:
    """How long this process has run, in seconds (to a clock tick)."""
    import time

    ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
    return time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")


def process() -> dict[str, Any]:
    """What a job sees of the process it runs in, and what an earlier job might have left."""
    import sys
    import time

    return {
        "age": _age(),
        "job": os.environ.get("HORUS_JOB_ID"),
        "cwd": os.getcwd(),
        "home": os.environ.get("HOME"),
        "tz": time.tzname[0],
        "decimal": "decimal" in sys.modules,
        "left": {
            "workdir": os.path.exists("trace"),
            "tmp": os.path.exists("/tmp/trace"),
            "module": hasattr(os, "_horus_trace"),
            "env": "LEFT_BY_A_JOB" in os.environ,
        },
    }


def leave_traces() -> dict[str, Any]:
    """Leave something of this job everywhere it can, then say what it sees."""
    for path in ("trace", "/tmp/trace"):  # a sandbox's /tmp is not the job's to write
        try:
            with open(path, "w") as out:
                out.write("left by a job")
        except PermissionError:
            continue
    os._horus_trace = True  # type: ignore[attr-defined]
    os.environ["LEFT_BY_A_JOB"] = "1"
    return process()
