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
from typing import Any

from pydantic import BaseModel, ValidationError

from horus.errors import InvalidJob, RunnerContractError, UnknownRunner
from horus.job import Job, explain
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


def params(runner: Runner, job: Job) -> BaseModel:
    """``job.params`` as the runner's ``Params`` model; :class:`InvalidJob` naming the runner
    and the field when the runner does not declare one or a value does not fit."""
    try:
        return runner.Params.model_validate(job.params)
    except ValidationError as exc:
        declared = ", ".join(sorted(runner.Params.model_fields)) or "none"
        detail = explain(exc, "params").removeprefix("invalid params: ")
        raise InvalidJob(
            f"invalid job for runner {job.runner_id!r}: params: {detail}; the {job.runner_id} "
            f"runner's params are: {declared} (see `horus schema runner {job.runner_id}`)"
        ) from None


def validate(runner: Runner, job: Job) -> BaseModel:
    """Ask ``runner`` whether it can run ``job``; client and worker both call this. Returns
    the job's validated params.

    Any exception from the plugin is a refusal (:class:`InvalidJob`), never a traceback.
    """
    checked = params(runner, job)
    try:
        runner.validate(job.payload, checked)
    except Exception as exc:
        raise InvalidJob(f"invalid job for runner {job.runner_id!r}: {exc}") from None
    return checked


def configure(runner: Runner, raw: dict[str, Any]) -> BaseModel:
    """The runner's configuration (its table of ``runners.toml``) as its ``Config`` model."""
    try:
        return runner.Config.model_validate(raw)
    except ValidationError as exc:
        raise RunnerContractError(
            f"runners.toml [{runner.name}]: {explain(exc, 'config')}; its settings are: "
            f"{', '.join(sorted(runner.Config.model_fields)) or 'none'}"
        ) from None


def check(entry: EntryPoint, obj: object) -> Runner:
    """Instantiate a plugin and check it keeps the contract; the error names the fix."""
    where = f"runner plugin {entry.name!r} ({entry.value})"
    if not (inspect.isclass(obj) and issubclass(obj, Runner)):
        raise RunnerContractError(
            f"{where} is not a subclass of horus.runner.Runner; derive from it"
        )
    if inspect.isabstract(obj):
        missing = ", ".join(sorted(obj.__abstractmethods__))
        raise RunnerContractError(f"{where} does not implement {missing}; add run(ctx)")
    for attribute in ("Params", "Config"):
        model = getattr(obj, attribute, None)
        if not (inspect.isclass(model) and issubclass(model, BaseModel)):
            raise RunnerContractError(
                f"{where} has a {attribute} that is not a pydantic model; declare "
                f"`{attribute} = SomeModel` (a pydantic BaseModel subclass)"
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
