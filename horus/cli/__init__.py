"""The ``horus`` command. Errors become one line on stderr and an exit code here, and only
here.

Exit codes: 0 success (with ``--wait``: the job completed); 1 the job failed; 2 bad input
(an invalid job, a usage error); 3 the job timed out; 4 the job was cancelled; 5 the broker
or job store cannot be reached; 6 no such job; 7 the job is not in a state that allows the
request; 8 refused by a signature, an expiry or the policy; 130 interrupted.
"""

from __future__ import annotations

from horus.cli import jobs, platform, trust
from horus.cli.group import cli

__all__ = ["cli", "jobs", "main", "platform", "trust"]


def main() -> None:
    """Entry point of the ``horus`` console script."""
    cli()
