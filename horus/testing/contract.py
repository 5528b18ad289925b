"""The contract checks (:data:`CHECKS`): what the platform relies on from every runner.
A check raises :class:`ContractViolation` saying what to fix, or :class:`NotApplicable` when
the runner does not declare what it needs (a runner with no ``slow_example`` is not checked
for its timeout)."""

from __future__ import annotations

import inspect
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import BaseModel

from horus import registry
from horus.errors import HorusError, InvalidJob
from horus.job import RUNNER_PATTERN, Job, JobStatus, parse_job
from horus.runner import DISCARD, Example, Outcome, OutputSink, Runner
from horus.testing.local import RecordingSink, run_locally

#: how a job may end
TERMINAL = frozenset(
    {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.TIMEOUT, JobStatus.CANCELLED}
)
#: a param no runner declares
UNDECLARED = "horus_contract_undeclared"
#: payloads ``validate`` must take or refuse with ValueError, never crash on
ODD_PAYLOADS = (" ", "\x00", "\n\n", "é" * 2000, "{}", "[]", "a:b", "$(true)", "\udcff")
#: seconds a run may take past its timeout or cancel before the check gives up on it
GRACE = 10.0


class ContractViolation(AssertionError):
    """A runner breaks the contract; the message says what to fix."""


class NotApplicable(Exception):
    """The runner does not declare what a check needs (e.g. no ``slow_example``)."""


Check = Callable[[type[Runner]], None]


def _where(cls: type[Runner]) -> str:
    return f"runner {getattr(cls, 'name', '?')!r} ({cls.__module__}:{cls.__qualname__})"


def _fail(cls: type[Runner], problem: str) -> ContractViolation:
    return ContractViolation(f"{_where(cls)}: {problem}")


def _example(cls: type[Runner], attribute: str) -> Example:
    example = getattr(cls, attribute, None)
    if example is None:
        raise NotApplicable(f"{_where(cls)} declares no {attribute}")
    if not isinstance(example, Example):
        raise _fail(cls, f"{attribute} is {example!r}; make it horus.Example(payload, params)")
    return example


def _job(cls: type[Runner], example: Example, attribute: str) -> Job:
    try:
        return parse_job(
            {"runner_id": cls.name, "payload": example.payload, "params": dict(example.params)}
        )
    except InvalidJob as exc:
        raise _fail(cls, f"its {attribute} is not a job: {exc}") from None


def _instance(cls: type[Runner]) -> Runner:
    try:
        return cls()
    except Exception as exc:
        raise _fail(cls, f"failed to start: {exc!r}") from None


def _entry(cls: type[Runner]) -> EntryPoint:
    name = getattr(cls, "name", None)
    found = [e for e in entry_points(group=registry.GROUP) if e.name == name]
    if not found:
        raise _fail(
            cls,
            f"no entry point {name!r} in the group {registry.GROUP!r}; register it: "
            f'[project.entry-points."{registry.GROUP}"] {name} = "{cls.__module__}:'
            f'{cls.__qualname__}" (and install the package)',
        )
    return found[0]


def _run(
    cls: type[Runner],
    example: Example,
    *,
    output: OutputSink = DISCARD,
    cancel_after: float | None = None,
    **fields: Any,
) -> tuple[Outcome, float]:
    """Run ``example`` in a thread; the outcome and the seconds it took. No exception may
    escape ``run()``, and a run that outlives its timeout or cancel by :data:`GRACE` is a
    violation."""
    runner = _instance(cls)
    cancel = threading.Event()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["outcome"] = run_locally(
                runner,
                example.payload,
                output=output,
                cancel=cancel,
                params=dict(example.params),
                **fields,
            )
        except BaseException as exc:
            box["error"] = exc

    begun = time.monotonic()
    thread = threading.Thread(target=target, name=f"contract-{cls.name}", daemon=True)
    thread.start()
    if cancel_after is not None:
        thread.join(cancel_after)
        cancel.set()
    limit = fields.get("timeout", 60) if cancel_after is None else cancel_after
    thread.join(limit + GRACE)
    took = time.monotonic() - begun
    if thread.is_alive():
        cancel.set()
        raise _fail(cls, f"run() of {example} did not return {GRACE:.0f} s after its end")
    if "error" in box:
        exc = box["error"]
        if isinstance(exc, InvalidJob):
            raise _fail(cls, f"refused its own {example}: {exc}")
        raise _fail(
            cls,
            f"an exception escaped run() of {example}: {exc!r}; catch it and return "
            "Outcome(status=JobStatus.FAILED, error=...)",
        )
    outcome = box["outcome"]
    if not isinstance(outcome, Outcome):
        raise _fail(cls, f"run() returned {outcome!r}; return a horus.Outcome")
    if outcome.status not in TERMINAL:
        ends = ", ".join(sorted(s.value for s in TERMINAL))
        raise _fail(cls, f"run() returned status {outcome.status!r}; return one of {ends}")
    return outcome, took


def check_registered(cls: type[Runner]) -> None:
    """It is a :class:`Runner` whose ``name`` is a runner id and the name of its entry point
    in ``horus.runners``, and it loads as the platform loads it."""
    name = getattr(cls, "name", None)
    if not (isinstance(name, str) and re.match(RUNNER_PATTERN, name)):
        raise _fail(cls, f"name {name!r} is not a runner id: lowercase letters, digits, - or _")
    entry = _entry(cls)
    try:
        loaded = entry.load()
    except Exception as exc:
        raise _fail(cls, f"its entry point {entry.value} fails to load: {exc!r}") from None
    if loaded is not cls:
        raise _fail(cls, f"its entry point {name!r} is {entry.value}, another class")
    try:
        registry.check(entry, loaded)
    except HorusError as exc:
        raise ContractViolation(str(exc)) from None


def check_described(cls: type[Runner]) -> None:
    """It has a one-line ``description`` (``horus runners`` shows it)."""
    text = getattr(cls, "description", "")
    if not isinstance(text, str) or not text.strip() or "\n" in text:
        raise _fail(cls, f"description is {text!r}; set one line saying what it runs")


def check_schemas(cls: type[Runner]) -> None:
    """``Params`` and ``Config`` are pydantic models with JSON schemas
    (``horus schema runner NAME`` prints them)."""
    for attribute in ("Params", "Config"):
        model = getattr(cls, attribute, None)
        if not (inspect.isclass(model) and issubclass(model, BaseModel)):
            raise _fail(cls, f"{attribute} is {model!r}; make it a pydantic BaseModel subclass")
        try:
            schema = model.model_json_schema()
            json.dumps(schema)
        except Exception as exc:
            raise _fail(cls, f"{attribute} has no JSON schema: {exc}") from None
        if schema.get("type") != "object":
            raise _fail(cls, f"{attribute}'s JSON schema is not an object: {schema}")


def check_undeclared_param_refused(cls: type[Runner]) -> None:
    """A job with a param its ``Params`` does not declare is refused, naming the runner and
    the field (not applicable to a runner whose params take any name)."""
    if cls.Params.model_config.get("extra") == "allow":
        raise NotApplicable(f"{_where(cls)} takes params of any name (extra='allow')")
    base = dict(cls.example.params) if isinstance(cls.example, Example) else {}
    job = parse_job({"runner_id": cls.name, "payload": "x", "params": {**base, UNDECLARED: 1}})
    try:
        registry.params(_instance(cls), job)
    except InvalidJob as exc:
        text = str(exc)
        if repr(cls.name) not in text or UNDECLARED not in text:
            raise _fail(cls, f"the refusal {text!r} names neither runner nor field") from None
        return
    raise _fail(
        cls,
        f"a job with the undeclared param {UNDECLARED!r} was accepted; set "
        "model_config = ConfigDict(extra='forbid') on its Params",
    )


def check_example_accepted(cls: type[Runner]) -> None:
    """It declares an ``example`` job, and accepts it."""
    if getattr(cls, "example", None) is None:
        raise _fail(cls, 'declares no example; set example = horus.Example("payload", {...})')
    example = _example(cls, "example")
    job = _job(cls, example, "example")
    try:
        registry.validate(_instance(cls), job)
    except InvalidJob as exc:
        raise _fail(cls, f"refuses its own example: {exc}") from None


def check_invalid_refused(cls: type[Runner]) -> None:
    """``validate`` refuses its ``invalid_example`` with ``ValueError``, which the platform
    turns into a refusal naming the runner."""
    example = _example(cls, "invalid_example")
    runner = _instance(cls)
    job = _job(cls, example, "invalid_example")
    try:
        params = registry.params(runner, job)
    except InvalidJob as exc:
        raise _fail(cls, f"its invalid_example's params do not fit its Params: {exc}") from None
    try:
        runner.validate(job.payload, params)
    except ValueError as exc:
        if not str(exc).strip():
            raise _fail(cls, "validate() refused with an empty message; say what to fix") from None
    except Exception as exc:
        raise _fail(cls, f"validate() crashed with {exc!r}; raise ValueError(reason)") from None
    else:
        raise _fail(cls, f"validate() accepted its invalid_example {example}")
    try:
        registry.validate(runner, job)
    except InvalidJob as exc:
        if repr(cls.name) not in str(exc):
            raise _fail(cls, f"the refusal {exc} does not name the runner") from None


def check_validate_never_crashes(cls: type[Runner]) -> None:
    """``validate`` takes or refuses (``ValueError``) any payload; it never crashes."""
    runner = _instance(cls)
    base = dict(cls.example.params) if isinstance(cls.example, Example) else {}
    try:
        params = cls.Params.model_validate(base)
    except Exception as exc:
        raise _fail(cls, f"its example's params do not fit its Params: {exc}") from None
    for payload in ODD_PAYLOADS:
        try:
            runner.validate(payload, params)
        except ValueError:
            continue
        except Exception as exc:
            raise _fail(
                cls, f"validate({payload[:20]!r}) crashed with {exc!r}; raise ValueError(reason)"
            ) from None


def check_example_completes(cls: type[Runner]) -> None:
    """Its ``example`` ends ``completed``, and the output it reports was written live to
    ``ctx.output`` too (``horus logs -f`` shows it)."""
    sink = RecordingSink()
    outcome, _ = _run(cls, _example(cls, "example"), output=sink, timeout=30)
    if outcome.status is not JobStatus.COMPLETED:
        raise _fail(cls, f"its example ended {outcome.status.value}: {outcome.error}")
    if outcome.output.strip() and outcome.output.strip() not in sink.text("stdout"):
        raise _fail(
            cls,
            f"its example's output {outcome.output[:60]!r} was not written to ctx.output "
            "(ctx.output.write('stdout', data); ctx.run_process and ctx.call do it)",
        )


def check_timeout_honoured(cls: type[Runner]) -> None:
    """Its ``slow_example`` with a 1 s timeout ends ``timeout``, promptly."""
    outcome, took = _run(cls, _example(cls, "slow_example"), timeout=1)
    if outcome.status is not JobStatus.TIMEOUT:
        raise _fail(
            cls,
            f"its slow_example with a 1 s timeout ended {outcome.status.value} "
            f"after {took:.1f} s; stop at ctx.deadline (ctx.run_process and ctx.call do)",
        )


def check_cancel_honoured(cls: type[Runner]) -> None:
    """Its ``slow_example``, cancelled while it runs, ends ``cancelled``, promptly."""
    outcome, took = _run(cls, _example(cls, "slow_example"), cancel_after=0.5, timeout=60)
    if outcome.status is not JobStatus.CANCELLED:
        raise _fail(
            cls,
            f"its slow_example, cancelled, ended {outcome.status.value} after "
            f"{took:.1f} s; run processes with ctx.run_process or ctx.call",
        )


#: every rule of the contract, in the order :func:`check_runner` applies them
CHECKS: tuple[Check, ...] = (
    check_registered,
    check_described,
    check_schemas,
    check_undeclared_param_refused,
    check_example_accepted,
    check_invalid_refused,
    check_validate_never_crashes,
    check_example_completes,
    check_timeout_honoured,
    check_cancel_honoured,
)


def check_runner(runner: type[Runner] | Runner) -> Mapping[str, str]:
    """Apply every check of the contract to ``runner`` (its class, or an instance).

    Raises :class:`ContractViolation` listing every check it fails; returns the checks that
    did not apply, with the reason."""
    cls = runner if isinstance(runner, type) else type(runner)
    skipped: dict[str, str] = {}
    failed: list[str] = []
    for check in CHECKS:
        try:
            check(cls)
        except NotApplicable as why:
            skipped[check.__name__] = str(why)
        except ContractViolation as exc:
            failed.append(f"{check.__name__}: {exc}")
    if failed:
        raise ContractViolation("\n".join(failed))
    return skipped
