"""The ``python`` runner: the payload names a callable, ``package.module:function``.

The callable runs in a child Python process (its own process group, the job's environment),
so a timeout or cancel can stop it whatever it does. Sync and async callables both work
(seed 003's ``async def run() -> dict``); params are its keyword arguments; its return value,
as JSON, is the output; anything it prints goes to the error stream.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from horus.process import Outcome
from horus.runner import RunContext, Runner

#: the child's script, run by path so that it imports nothing but the standard library
CHILD = Path(__file__).with_name("child.py")
TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class PythonRunner(Runner):
    """Calls ``package.module:function(**params)`` and returns its JSON result."""

    name = "python"
    description = (
        "calls package.module:function(**params), sync or async; output is its JSON return"
    )

    def validate(self, payload: str, params: dict[str, Any]) -> None:
        """The payload must look like ``package.module:function``."""
        if not TARGET.match(payload.strip()):
            raise ValueError(
                f"payload {payload[:60]!r} is not a callable path; write package.module:function"
            )

    def run(self, ctx: RunContext) -> Outcome:
        """Start the child interpreter and hand it the call over stdin."""
        request = {
            "target": ctx.job.payload.strip(),
            "params": ctx.job.params,
            "sys_path": [p for p in sys.path if p],
        }
        outcome = ctx.run_process(
            [sys.executable, "-I", str(CHILD)],
            stdin=json.dumps(request).encode(),
        )
        return outcome
