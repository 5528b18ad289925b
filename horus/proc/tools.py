"""The programs that start a job's process (setpriv, env, bubblewrap, prlimit, unshare,
sleep), by absolute path: looked up once on the worker's own ``PATH``, never on a job's.

A job's environment is the environment of the processes that start it (the keeper, the
sandbox's helpers), and a job may set ``PATH``: looked up through it, a program of the
job's own, planted in a path its grant makes writable, would run in the job's place as the
worker's user, outside the sandbox, and would read the next job's start.
"""

from __future__ import annotations

import shutil
from functools import cache


@cache
def path(name: str) -> str:
    """``name`` as an absolute path found on this process's ``PATH`` (``name`` unchanged
    when it is absolute already or cannot be found: starting it fails as before)."""
    return shutil.which(name) or name
