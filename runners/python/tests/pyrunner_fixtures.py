"""Callables the python runner's tests call (importable by the job's child interpreter)."""

from __future__ import annotations

import asyncio
import os
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


def loaded(name: str) -> bool:
    """Whether module ``name`` was imported before this call."""
    import sys

    return name in sys.modules


def site_builtins() -> list[str]:
    """What the builtins a normal interpreter's ``site`` adds look like to the job."""
    import builtins

    return [repr(builtins.exit), repr(builtins.quit), type(builtins.help).__name__]
