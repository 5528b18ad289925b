"""A callable whose module imports only what the interpreter has loaded already."""

from __future__ import annotations

import sys


def loaded() -> list[str]:
    """The modules the job's interpreter has imported by the time it calls this."""
    return sorted(sys.modules)
