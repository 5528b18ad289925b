"""For runner authors' tests: run a runner on a job in this process, as a worker would but
with no broker, store or worker (its processes still get a process group, the job's
deadline and environment), and check a runner keeps the contract::

    from horus.testing import check_runner, run_locally
    outcome = run_locally("echo", "hello", params={...})
    check_runner(EchoRunner)  # ContractViolation listing every broken rule

The contract checks (:data:`CHECKS`) are what the platform relies on from every runner;
``tests/contract/`` applies them to every installed runner, and :func:`check_runner` (or
``python -m horus.testing [NAME ...]``) applies them to one. A check raises
:class:`ContractViolation` saying what to fix, or :class:`NotApplicable` when the runner
does not declare what it needs (a runner with no ``slow_example`` is not checked for its
timeout).
"""

from horus.testing.contract import (
    CHECKS,
    Check,
    ContractViolation,
    NotApplicable,
    check_runner,
)
from horus.testing.local import RecordingSink, run_locally

__all__ = [
    "CHECKS",
    "Check",
    "ContractViolation",
    "NotApplicable",
    "RecordingSink",
    "check_runner",
    "run_locally",
]
