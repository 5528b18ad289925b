"""The sandbox a job's process runs in: Linux namespaces made by bubblewrap (``bwrap``).

A sandboxed job gets new user, PID, mount, IPC, UTS, cgroup and (unless its grant allows the
network) network namespaces. It sees the system read-only (``/usr``, ``/etc`` and the
interpreter paths it is given), a private ``/proc`` that shows only its own processes, a
private ``/tmp``, its own working directory writable, and the host paths its grant names;
nothing else of the machine. Paths that must never show (``HORUS_HOME``, the keys, the
policy) are covered even where they lie under a path it may read.

A worker that runs as root makes the namespaces as root and then runs the job as a user of
its own (:attr:`Sandbox.uid`, group ``nogroup``) with no capabilities and ``no_new_privs``,
in a user namespace of its own: root's capabilities and files stay out of its reach.

The sandbox's first process (bubblewrap's init, pid 1 inside) is in the job's process group:
while it lives, the group lives, and it dies last (the kernel kills every process of a PID
namespace whose init exits, and the init is reaped only once they are all gone). So nothing
a job starts, however detached, outlives the job's group.

Limits are rlimits set with util-linux ``prlimit`` inside the sandbox, on the job's first
process; its children inherit them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from horus.proc import tools

#: a root worker's job runs as user UID_BASE + the worker process's pid, group GID
UID_BASE = 1_000_000
#: the group of every sandboxed job of a root worker (nogroup): paths a grant makes
#: writable must be writable by it
GID = 65534
#: host directories every sandbox sees read-only (those that exist)
SYSTEM = ("/usr", "/etc", "/opt")
#: top-level names that are symlinks into /usr on a merged-/usr system
MERGED = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


@dataclass(frozen=True)
class Limits:
    """rlimits of a job's processes (None: not limited)."""

    #: address space per process, MiB
    memory_mb: int | None = None
    #: CPU seconds per process
    cpu_seconds: int | None = None
    #: largest file a process may write, MiB
    file_mb: int | None = None
    #: processes (threads included) the job may have at once
    processes: int | None = None

    def prlimit(self) -> list[str]:
        """The ``prlimit`` command line that sets them (empty when none is set)."""
        options = []
        if self.memory_mb is not None:
            options.append(f"--as={self.memory_mb * 1024 * 1024}")
        if self.cpu_seconds is not None:  # SIGXCPU at the limit, SIGKILL a second later
            options.append(f"--cpu={self.cpu_seconds}:{self.cpu_seconds + 1}")
        if self.file_mb is not None:
            options.append(f"--fsize={self.file_mb * 1024 * 1024}")
        if self.processes is not None:
            options.append(f"--nproc={self.processes}")
        return [tools.path("prlimit"), *options, "--"] if options else []


@dataclass(frozen=True)
class Sandbox:
    """What one job's sandbox lets it see and do."""

    #: the bubblewrap binary
    bwrap: str = "bwrap"
    #: the job may use the network (the host's)
    network: bool = False
    #: host paths the job may read (besides the system)
    readable: tuple[Path, ...] = ()
    #: host paths the job may write
    writable: tuple[Path, ...] = ()
    #: host paths the job must never see, even under a readable path
    hidden: tuple[Path, ...] = ()
    limits: Limits = field(default_factory=Limits)

    @property
    def uid(self) -> int | None:
        """The user a root worker's job runs as: one of its own per worker process, so that
        the process limit of one job counts only that job's processes (None: a worker that
        is not root runs its jobs as itself, in a user namespace)."""
        return UID_BASE + os.getpid() if os.geteuid() == 0 else None

    def prepare(self, workdir: Path) -> None:
        """Make the job's working directory its own (the user it runs as owns it)."""
        uid = self.uid
        if uid is not None:
            os.chown(workdir, uid, GID)

    def command(self, argv: Sequence[str], workdir: Path) -> list[str]:
        """``argv`` run in this sandbox, in ``workdir``."""
        uid = self.uid
        if uid is None:  # bubblewrap makes every namespace, the user's included
            args = [tools.path(self.bwrap), "--unshare-all", "--die-with-parent"]
            if self.network:
                args.append("--share-net")
        else:  # root: namespaces but the user's, then the job drops to its own user
            args = [tools.path(self.bwrap), "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
            args += ["--unshare-cgroup-try", "--die-with-parent"]
            if not self.network:
                args.append("--unshare-net")
        args += ["--hostname", "horus-job"]
        args += _system()
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        bound: list[Path] = []
        made: set[Path] = set()
        for path in _outermost(self.readable):
            args += [*_parents(path, bound, made), "--ro-bind-try", str(path), str(path)]
        for path in _outermost(self.writable):
            args += [*_parents(path, bound, made), "--bind-try", str(path), str(path)]
        args += [*_parents(workdir, bound, made), "--bind", str(workdir), str(workdir)]
        for path in self.hidden:
            if _in_system(path) or any(path.is_relative_to(b) for b in bound):
                args += _cover(path)
        args += ["--chdir", str(workdir), "--"]
        if uid is not None:
            args += [tools.path("setpriv"), f"--reuid={uid}", f"--regid={GID}", "--clear-groups"]
            args += ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
            args += [tools.path("unshare"), "--user", "--"]
        return [*args, *self.limits.prlimit(), *argv]


def _outermost(paths: Sequence[Path]) -> list[Path]:
    """``paths`` without those inside another of them or inside the system."""
    kept: list[Path] = []
    for path in sorted(set(paths)):
        if not any(path.is_relative_to(k) for k in kept) and not _in_system(path):
            kept.append(path)
    return kept


def _in_system(path: Path) -> bool:
    """True for a path under the read-only system every sandbox sees."""
    merged = len(path.parts) > 1 and path.parts[1] in MERGED
    return merged or any(path.is_relative_to(p) for p in SYSTEM)


def _parents(path: Path, bound: list[Path], made: set[Path]) -> list[str]:
    """Directories to make, traversable, on the way to ``path``, which is then bound
    (bubblewrap would copy the host's modes: a root worker's ``/root`` would shut out the
    job's own user); none inside what is bound already, none made twice."""
    args: list[str] = []
    for parent in reversed(path.parents[:-1]):
        inside = any(parent.is_relative_to(b) for b in bound)
        if inside or parent in made or _in_system(parent) or parent == Path("/tmp"):
            continue
        made.add(parent)
        args += ["--perms", "0755", "--dir", str(parent)]
    bound.append(path)
    return args


@cache
def _system() -> tuple[str, ...]:
    """The read-only system: /usr, /etc, /opt, and /bin, /lib... as on the host (looked up
    once per process)."""
    args: list[str] = []
    for path in SYSTEM:
        if os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for name in MERGED:
        host = Path("/") / name
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), str(host)]
        elif host.is_dir():
            args += ["--ro-bind", str(host), str(host)]
    return tuple(args)


def _cover(path: Path) -> list[str]:
    """What hides ``path`` in the sandbox: an empty tmpfs on a directory, /dev/null on a
    file; nothing for a path the sandbox does not show anyway."""
    if path.is_dir():
        return ["--tmpfs", str(path)]
    if path.exists():
        return ["--ro-bind", "/dev/null", str(path)]
    return []


@cache
def _probe(bwrap: str, pid: int) -> str | None:
    """Start one sandbox (once per ``bwrap`` and process: a forked pool process runs its
    jobs as another user, so it looks again)."""
    if shutil.which(bwrap) is None:
        return f"{bwrap} is not installed"
    box = Sandbox(bwrap=bwrap)
    with_uid = box.command(["/bin/true"], Path("/"))
    try:
        # in a session of its own: the sandbox's init may outlive bubblewrap for a moment,
        # and a worker's main process reaps what it adopts only outside its own group
        ran = subprocess.run(with_uid, capture_output=True, timeout=30, start_new_session=True)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{bwrap} could not start: {exc}"
    if ran.returncode != 0:
        said = ran.stderr.decode(errors="replace").strip().splitlines()
        return f"{bwrap} cannot make namespaces here ({said[-1] if said else ran.returncode})"
    return None


def unavailable(bwrap: str = "bwrap") -> str | None:
    """Why sandboxes cannot be made on this machine, or None when they can (checked once
    per process by starting one)."""
    return _probe(bwrap, os.getpid())
