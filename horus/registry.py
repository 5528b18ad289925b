"""Discovers runner plugins through the entry-point group ``horus.runners``.

First-party runners come through the same path as third-party ones. A plugin that fails to
load or breaks the contract is set aside with its reason (shown by ``horus runners``), so
one bad plugin cannot stop a worker from serving the others.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import EntryPoint, entry_points

from horus.errors import InvalidJob, RunnerContractError, UnknownRunner
from horus.job import Job
from horus.runner import Runner

GROUP = "horus.runners"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Registry:
    """The runners installed in this Python environment."""

    runners: dict[str, Runner] = field(default_factory=dict)
    #: plugins that failed to load, with the reason
    broken: dict[str, str] = field(default_factory=dict)

    def get(self, runner_id: str) -> Runner:
        """The runner called ``runner_id``, or :class:`UnknownRunner` listing the others."""
        try:
            return self.runners[runner_id]
        except KeyError:
            raise UnknownRunner(runner_id, sorted(self.runners)) from None


def validate(runner: Runner, job: Job) -> None:
    """Ask ``runner`` whether it can run ``job``; client and worker both call this.

    Any exception from the plugin is a refusal (:class:`InvalidJob`), never a traceback.
    """
    try:
        runner.validate(job.payload, job.params)
    except Exception as exc:
        raise InvalidJob(f"invalid job for runner {job.runner_id!r}: {exc}") from None


def check(entry: EntryPoint, obj: object) -> Runner:
    """Instantiate a plugin and check it keeps the contract; the error names the fix."""
    where = f"runner plugin {entry.name!r} ({entry.value})"
    if not (inspect.isclass(obj) and issubclass(obj, Runner)):
        raise RunnerContractError(
            f"{where} is not a subclass of horus.runner.Runner; derive from it"
        )
    if inspect.isabstract(obj):
        missing = ", ".join(sorted(obj.__abstractmethods__))
        raise RunnerContractError(
            f"{where} does not implement {missing}; add run(ctx) and validate(payload, params)"
        )
    name = getattr(obj, "name", None)
    if name != entry.name:
        raise RunnerContractError(
            f"{where} has name {name!r}; set `name = {entry.name!r}` to match its entry point"
        )
    try:
        return obj()
    except Exception as exc:
        raise RunnerContractError(f"{where} failed to start: {exc}") from None


@cache
def installed() -> Registry:
    """Load every installed runner once per process."""
    registry = Registry()
    for entry in entry_points(group=GROUP):
        try:
            registry.runners[entry.name] = check(entry, entry.load())
        except (Exception, SystemExit) as exc:
            reason = (
                str(exc)
                if isinstance(exc, RunnerContractError)
                else (
                    f"runner plugin {entry.name!r} ({entry.value}) failed to import: {exc!r}; "
                    "fix or uninstall that package"
                )
            )
            log.error("%s", reason)
            registry.broken[entry.name] = reason
    return registry
