"""Every installed runner, third-party ones included, keeps the runner contract: each
check of :data:`horus.testing.CHECKS` against each runner of the ``horus.runners``
entry-point group, found at collection time.

A runner author runs the same checks on a runner of their own with
``horus.testing.check_runner(MyRunner)`` or ``python -m horus.testing my-runner``.
"""

from __future__ import annotations

import pytest

from horus import Runner, registry
from horus.testing import CHECKS, Check, NotApplicable

INSTALLED = registry.installed()
NAMES = sorted({*INSTALLED.runners, *INSTALLED.broken})


def runner_class(name: str) -> type[Runner]:
    """The class of the installed runner ``name``; a plugin that did not load fails."""
    if name in INSTALLED.broken:
        pytest.fail(INSTALLED.broken[name], pytrace=False)
    return type(INSTALLED.get(name))


def test_the_first_party_and_test_runners_are_all_found() -> None:
    assert {"shell", "python", "echo", "chaos"} <= set(NAMES)


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__.removeprefix("check_") for c in CHECKS])
@pytest.mark.parametrize("name", NAMES)
def test_runner_keeps_the_contract(name: str, check: Check) -> None:
    cls = runner_class(name)
    try:
        check(cls)
    except NotApplicable as why:
        pytest.skip(str(why))
