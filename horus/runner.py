"""The runner plugin contract, version 2. Runner authors import only from :mod:`horus`.

A runner is a class registered under the entry-point group ``horus.runners``::

    [project.entry-points."horus.runners"]
    echo = "my_package:EchoRunner"

It has a ``name`` (equal to its entry-point name), a one-line ``description``, the
parameters it takes as a pydantic model (``Params``: a job with a parameter the model does
not declare is refused at submission, naming the runner and the field), optionally its own
configuration as a model (``Config``, read from the worker's ``runners.toml``), an optional
``validate(payload, params)`` that raises ``ValueError`` with a reason a person can act on,
and a ``run(ctx)`` that returns an :class:`Outcome`.

Runners never see the broker, the job store or the worker: the worker records what they
return. Through the :class:`RunContext` a runner

- starts processes (:meth:`RunContext.run_process`): the job's timeout, cancel and the death
  of its worker end the whole process group, grandchildren included;
- makes a library call (:meth:`RunContext.call`, a SQL query, a blob copy) with the same
  deadline, cancel and worker-death guarantees: it runs in a child interpreter of its own;
- writes live output (:attr:`RunContext.output`), secrets masked at the source.

The contract suite (:func:`horus.testing.check_runner`, and ``tests/contract/`` over every
installed runner) runs the jobs a runner describes as :class:`Example` class attributes:

- ``example`` (required): a quick job that ends ``completed``; its output, if it has
  any, is also written live to ``ctx.output``;
- ``slow_example`` (for a runner whose jobs can run long): a job that runs until it is
  stopped; with a 1 s timeout it must end ``timeout``, and a cancel must end it
  ``cancelled``;
- ``invalid_example`` (for a runner whose ``validate`` refuses some payloads): a job
  ``validate`` refuses with ``ValueError``.
"""

from __future__ import annotations

import functools
import json
import os
import site
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from horus.job import Job, JobStatus

#: bytes of stdout (and of stderr) a job may leave in its result; the rest is dropped
OUTPUT_CAP = 1024 * 1024
#: the only variables a job inherits; the worker's own environment never reaches a job
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"
#: how a job's process may be started before the job comes (see horus.execution.warm):
#: "call", a child interpreter that takes its call and environment from its stdin; "exec",
#: any command, its environment set by the worker
WarmStart = Literal["call", "exec"]


@dataclass(frozen=True)
class Outcome:
    """What a runner reports back: the worker adds the job id, times and its own name."""

    status: JobStatus
    output: str = ""
    error: str | None = None
    exit_code: int | None = None
    output_truncated: bool = False


@dataclass(frozen=True)
class Example:
    """A job a runner describes for the contract suite: its payload and params."""

    payload: str
    params: Mapping[str, Any] = field(default_factory=dict)


class NoParams(BaseModel):
    """The parameters of a runner that takes none."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoConfig(BaseModel):
    """The configuration of a runner that has none."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class OutputSink(Protocol):
    """Where a runner writes what the job prints as it comes (``horus logs -f``): secrets are
    masked here, at the source, and the store keeps a capped copy."""

    def write(self, stream: str, data: bytes) -> None:
        """Append ``data`` to ``stream`` (``stdout`` or ``stderr``)."""


class Launcher(Protocol):
    """What runs a job's processes: the worker's keeper, process group, deadline and
    cancel machinery (and later its sandbox) behind one call."""

    def run(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str],
        cwd: Path,
        deadline: float,
        stdin: bytes | None,
        warm: WarmStart | None = None,
    ) -> Outcome:
        """Run ``argv`` to its end, its deadline (``time.monotonic()``) or its cancel;
        ``warm``: in a process that may have been started before the job came, and how."""


class _Discard:
    def write(self, stream: str, data: bytes) -> None:
        """Drop it."""


#: the sink of a context nobody reads live
DISCARD: OutputSink = _Discard()
#: the interpreter script :meth:`RunContext.call` runs (standard library only)
CHILD = Path(__file__).with_name("child.py")
#: a ``.pth`` file whose code only sets up setuptools' own ``distutils``, not imports
_HARMLESS_PTH = frozenset({"distutils-precedence.pth"})


def site_runs_code(site_dirs: Sequence[str], search_path: Sequence[str]) -> bool:
    """Whether ``site`` would run code at an interpreter's start: a ``.pth`` file in one of
    ``site_dirs`` with an ``import`` line (an editable install's import hook, say), or a
    ``sitecustomize`` module on ``search_path``. Only then does the child interpreter need
    ``site``; otherwise it skips it (``-S``), as the worker's search path is handed over."""
    for directory in search_path:
        if (
            Path(directory, "sitecustomize.py").exists()
            or Path(directory, "sitecustomize").is_dir()
        ):
            return True
    for directory in site_dirs:
        try:
            pths = [p for p in Path(directory).glob("*.pth") if p.name not in _HARMLESS_PTH]
        except OSError:
            continue
        for pth in pths:
            try:
                lines = pth.read_text(errors="replace").splitlines()
            except OSError:
                continue
            if any(line.startswith(("import ", "import\t")) for line in lines):
                return True
    return False


@functools.cache
def child_interpreter() -> tuple[str, ...]:
    """The argv that starts :data:`CHILD`: isolated (``-I``), and without ``site`` (``-S``,
    some 6 ms of every python job) unless this installation's ``site`` runs code."""
    plain = not site_runs_code(site.getsitepackages(), [p for p in sys.path if p])
    flags = ("-I", "-S") if plain else ("-I",)
    return (sys.executable, *flags, str(CHILD))


def target_of(function: Callable[..., Any] | str) -> str:
    """``package.module:qualname`` of an importable function (or the text given)."""
    if isinstance(function, str):
        return function.strip()
    module, qualname = getattr(function, "__module__", None), function.__qualname__
    if not module or "<" in qualname or module == "__main__":
        raise ValueError(
            f"{function!r} cannot be imported by a child interpreter; define it at the top "
            "level of an importable module"
        )
    return f"{module}:{qualname}"


@dataclass(frozen=True)
class RunContext:
    """Everything a runner needs to execute one job, and nothing of the worker."""

    job: Job
    workdir: Path
    #: ``time.monotonic()`` value at which the job is out of time
    deadline: float
    #: what runs the job's processes (the worker's keeper and process groups)
    launcher: Launcher
    #: the job's ``params``, validated by the runner's ``Params`` model
    params: BaseModel = field(default_factory=NoParams)
    #: the runner's own configuration, validated by its ``Config`` model
    config: BaseModel = field(default_factory=NoConfig)
    #: where the job's output goes as it comes
    output: OutputSink = DISCARD
    #: the job's secrets, opened by the worker; set in the environment like env_vars
    secrets: Mapping[str, str] = field(default_factory=dict)
    #: which attempt this is (1, 2, ...)
    attempt: int = 1

    def environment(self) -> dict[str, str]:
        """A minimal environment plus the job's own env_vars (which win) and secrets."""
        env = {
            "PATH": BASE_PATH,
            "HOME": str(self.workdir),
            "TMPDIR": str(self.workdir),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "HORUS_JOB_ID": self.job.id,
            "HORUS_RUNNER_ID": self.job.runner_id,
            "HORUS_ATTEMPT": str(self.attempt),
        }
        if self.job.caller_id:
            env["HORUS_CALLER_ID"] = self.job.caller_id
        if self.job.context_id:
            env["HORUS_CONTEXT_ID"] = self.job.context_id
        env.update(self.job.env_vars)
        env.update(self.secrets)
        return env

    def run_process(self, argv: Sequence[str], stdin: bytes | None = None) -> Outcome:
        """Run ``argv`` in the job's workdir, own process group and environment, until it
        exits, the job's deadline passes or the job is cancelled."""
        return self.launcher.run(
            argv,
            env=self.environment(),
            cwd=self.workdir,
            deadline=self.deadline,
            stdin=stdin,
            warm="exec",
        )

    def call(
        self,
        function: Callable[..., Any] | str,
        kwargs: Mapping[str, Any] | None = None,
        sys_path: Sequence[str] = (),
        preload: Sequence[str] = (),
    ) -> Outcome:
        """Call ``function`` (importable, or ``package.module:function``) with ``kwargs`` in
        a child interpreter of the job's own, with the job's deadline, cancel and
        environment: its JSON return value is the output; what it prints goes to the error
        stream; an exception makes the job ``failed`` with its traceback.

        The interpreter imports the modules named in ``preload`` before the job's request
        (and before the job's environment is set), and may have been started before the job
        came (a warm start, see :mod:`horus.execution.warm`)."""
        env = self.environment()
        paths = [*sys_path, *(p for p in sys.path if p)]
        request = {
            "target": target_of(function),
            "params": dict(kwargs or {}),
            "sys_path": paths,
            "env": env,
        }
        argv = [*child_interpreter()]
        if preload:
            argv += ["--preload", ",".join(preload), "--path", os.pathsep.join(paths)]
        return self.launcher.run(
            argv,
            env=env,
            cwd=self.workdir,
            deadline=self.deadline,
            stdin=json.dumps(request).encode(),
            warm="call",
        )


class Runner(ABC):
    """Base class of every runner plugin."""

    #: the runner id jobs name; equal to the entry-point name
    name: ClassVar[str]
    #: one line shown by `horus runners`
    description: ClassVar[str] = ""
    #: the parameters a job may give (``horus schema runner NAME`` prints them)
    Params: ClassVar[type[BaseModel]] = NoParams
    #: the runner's own configuration (a ``[NAME]`` table of the worker's runners.toml)
    Config: ClassVar[type[BaseModel]] = NoConfig
    #: a quick job that completes (the contract suite runs it)
    example: ClassVar[Example | None] = None
    #: a job that runs until stopped, if the runner's jobs can run long (timeout, cancel)
    slow_example: ClassVar[Example | None] = None
    #: a job ``validate`` refuses, if it refuses any
    invalid_example: ClassVar[Example | None] = None

    def validate(self, payload: str, params: Any) -> None:
        """Raise ``ValueError`` naming the problem and the fix if the job cannot run;
        ``params`` is an instance of :attr:`Params`. The default accepts any payload."""
        return None

    @abstractmethod
    def run(self, ctx: RunContext) -> Outcome:
        """Execute ``ctx.job`` and report how it ended."""
