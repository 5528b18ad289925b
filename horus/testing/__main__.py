"""``python -m horus.testing [NAME ...]``: check installed runners against the contract."""

from __future__ import annotations

import sys

from horus import registry
from horus.errors import HorusError
from horus.testing.contract import ContractViolation, check_runner


def main(argv: list[str]) -> int:
    """``python -m horus.testing [NAME ...]``: check the installed runners named (all if
    none); exit 1 if any breaks the contract."""
    installed = registry.installed()
    names = argv or sorted({*installed.runners, *installed.broken})
    status = 0
    for name in names:
        if name in installed.broken:
            print(f"{name}: FAILED\n  {installed.broken[name]}")
            status = 1
            continue
        try:
            skipped = check_runner(installed.get(name))
        except HorusError as exc:
            print(f"{name}: {exc}")
            status = 1
        except ContractViolation as exc:
            print(f"{name}: FAILED\n  " + str(exc).replace("\n", "\n  "))
            status = 1
        else:
            notes = "".join(f"\n  not applicable: {c}: {why}" for c, why in skipped.items())
            print(f"{name}: keeps the contract{notes}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
