"""Which isolation a job gets: the one place that turns the grant that admitted a job into
its sandbox (:mod:`horus.proc.sandbox`) and its limits.

Every job runs in a sandbox unless the grant that admits it says ``sandbox = "none"``. A
worker that cannot make sandboxes runs no job that needs one: it refuses it with the
reason and what to do (fail closed).
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from horus.config import Settings
from horus.errors import HorusError
from horus.proc import sandbox
from horus.proc.sandbox import Limits, Sandbox
from horus.runner import CHILD, OUTPUT_CAP
from horus.trust.policy import Grant

INSTALL_HINT = "install bubblewrap (apt install bubblewrap) and run `horus doctor`"


class NoSandbox(HorusError):
    """A job needs a sandbox this worker cannot make."""


@dataclass(frozen=True)
class Isolation:
    """How one job runs: in ``sandbox`` (None: not sandboxed), with its output cap."""

    sandbox: Sandbox | None
    output_cap: int = OUTPUT_CAP
    #: the most its working directory may hold, bytes (None: no limit)
    workdir_bytes: int | None = None


@cache
def python_paths() -> tuple[Path, ...]:
    """The worker's Python installation, which sandboxed jobs see read-only: its prefixes,
    its import path and the interpreter script of :meth:`horus.runner.RunContext.call`
    (looked up once per process)."""
    found = [Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix)]
    found += [Path(entry) for entry in sys.path if entry]
    found.append(CHILD.parent)
    found.append(Path(sys.executable).resolve().parent)
    scratch = Path(tempfile.gettempdir())  # where every job's working directory lies
    unique: dict[Path, None] = {}
    for path in found:
        if path.is_absolute() and path.exists() and not scratch.is_relative_to(path):
            unique.setdefault(path, None)
    return tuple(unique)


def hidden_paths(settings: Settings) -> tuple[Path, ...]:
    """What no job may see, wherever it lies: the home, the keys, the policy, the socket."""
    return (
        settings.home,
        settings.key_path,
        settings.worker_key_path,
        settings.policy_path,
        settings.embedded_socket,
    )


#: where a cgroup v2 hierarchy lists its controllers (pure v2, or the unified part of a
#: hybrid v1/v2 machine)
CGROUP_CONTROLLERS = (
    Path("/sys/fs/cgroup/cgroup.controllers"),
    Path("/sys/fs/cgroup/unified/cgroup.controllers"),
)


def limits_in_force() -> str:
    """Which mechanism enforces a grant's limits on this machine, and why."""
    found: set[str] = set()
    for path in CGROUP_CONTROLLERS:
        try:
            found |= set(path.read_text().split())
        except OSError:
            continue
    if {"memory", "pids"} <= found:
        return (
            "rlimits (this machine has cgroup v2 memory and pids controllers; "
            "Horus does not use them yet)"
        )
    return "rlimits (this machine delegates no cgroup v2 memory and pids controllers)"


def describe(settings: Settings) -> str:
    """One line saying which isolation is in force on this machine."""
    why = sandbox.unavailable(settings.bwrap)
    if why:
        return f"isolation: NONE: {why}; jobs that need a sandbox are refused ({INSTALL_HINT})"
    return (
        "isolation: bubblewrap sandbox (user, PID, mount, IPC, UTS, network namespaces), "
        f"limits by {limits_in_force()}"
    )


def for_job(grant: Grant | None, settings: Settings, runner_id: str) -> Isolation:
    """The isolation the job admitted by ``grant`` runs with; :class:`NoSandbox` when it
    needs a sandbox this machine cannot make."""
    if grant is None:  # a worker without a policy to check (the client's own checks)
        grant = Grant(unsigned=True, runners=(runner_id,))
    limits = grant.limits
    output_cap = limits.output_kb * 1024 if limits.output_kb is not None else OUTPUT_CAP
    workdir_bytes = limits.workdir_mb * 1024 * 1024 if limits.workdir_mb is not None else None
    if grant.sandbox == "none":
        return Isolation(None, output_cap, workdir_bytes)
    why = sandbox.unavailable(settings.bwrap)
    if why:
        raise NoSandbox(
            f"this worker cannot sandbox jobs: {why}; {INSTALL_HINT}, or let a grant set "
            f'sandbox = "none" for runner {runner_id!r}'
        )
    box = Sandbox(
        bwrap=settings.bwrap,
        network=grant.network,
        readable=(*python_paths(), *(Path(p) for p in grant.readable)),
        writable=tuple(Path(p) for p in grant.writable),
        hidden=hidden_paths(settings),
        limits=Limits(
            memory_mb=limits.memory_mb,
            cpu_seconds=limits.cpu_seconds,
            file_mb=limits.file_mb if limits.file_mb is not None else limits.workdir_mb,
            processes=limits.processes,
        ),
    )
    return Isolation(box, output_cap, workdir_bytes)
