"""Runner discovery through the `horus.runners` entry points, with fake plugins."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from horus import registry
from horus.errors import InvalidJob, UnknownRunner
from horus.job import Job, JobStatus
from horus.registry import GROUP, Registry, installed, validate
from horus.runner import Outcome, RunContext, Runner

MODULE = __name__


class GoodRunner(Runner):
    name = "good"
    description = "a runner that keeps the contract"

    def validate(self, payload: str, params: dict[str, Any]) -> None:
        pass

    def run(self, ctx: RunContext) -> Outcome:
        return Outcome(status=JobStatus.COMPLETED, output=ctx.job.payload)


class AlphaRunner(GoodRunner):
    name = "alpha"


class NotARunner:
    name = "plain"


class AbstractRunner(Runner):
    name = "abstract"

    def validate(self, payload: str, params: dict[str, Any]) -> None:
        pass


class MisnamedRunner(GoodRunner):
    name = "other"


class CrashingRunner(GoodRunner):
    name = "crashing"

    def __init__(self) -> None:
        raise RuntimeError("no config file")


class _ExitsOnLoad:
    """Stands in for a plugin module that calls sys.exit() when it is imported."""

    def __getattr__(self, name: str) -> Any:
        if name == "plugin":
            raise SystemExit("this plugin needs libfoo; exiting")
        raise AttributeError(name)


EXITS_ON_LOAD = _ExitsOnLoad()


def entry(name: str, target: str) -> EntryPoint:
    return EntryPoint(name=name, value=f"{MODULE}:{target}", group=GROUP)


GOOD = entry("good", "GoodRunner")


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[EntryPoint]]:
    """The entry points `installed()` sees; tests fill the list."""
    found: list[EntryPoint] = []

    def fake_entry_points(*, group: str) -> list[EntryPoint]:
        assert group == GROUP
        return found

    installed.cache_clear()
    monkeypatch.setattr(registry, "entry_points", fake_entry_points)
    yield found
    installed.cache_clear()


@pytest.fixture
def real_registry() -> Iterator[Registry]:
    """The registry of the runners really installed in this environment."""
    installed.cache_clear()
    yield installed()
    installed.cache_clear()


def test_a_good_runner_is_loaded_under_its_entry_point_name(plugins: list[EntryPoint]) -> None:
    plugins.append(GOOD)
    reg = installed()
    assert list(reg.runners) == ["good"]
    assert isinstance(reg.runners["good"], GoodRunner)
    assert reg.broken == {}


def test_the_registry_is_loaded_once_per_process(plugins: list[EntryPoint]) -> None:
    plugins.append(GOOD)
    assert installed() is installed()


@pytest.mark.parametrize(
    ("plugin", "fix"),
    [
        pytest.param(entry("plain", "NotARunner"), "derive from it", id="not a Runner"),
        pytest.param(entry("abstract", "AbstractRunner"), "add run(ctx)", id="abstract"),
        pytest.param(entry("misnamed", "MisnamedRunner"), "set `name = 'misnamed'`", id="name"),
        pytest.param(entry("crashing", "CrashingRunner"), "no config file", id="init fails"),
        pytest.param(entry("typo", "NoSuchClass"), "NoSuchClass", id="missing attribute"),
        pytest.param(
            EntryPoint(name="gone", value="tests.unit.no_such_module:Runner", group=GROUP),
            "No module named 'tests.unit.no_such_module'",
            id="import fails",
        ),
    ],
)
def test_a_broken_plugin_is_set_aside_with_its_reason_and_the_good_one_still_loads(
    plugins: list[EntryPoint], plugin: EntryPoint, fix: str
) -> None:
    plugins.extend([plugin, GOOD])
    reg = installed()
    assert list(reg.runners) == ["good"]
    assert list(reg.broken) == [plugin.name]
    reason = reg.broken[plugin.name]
    assert f"runner plugin {plugin.name!r} ({plugin.value})" in reason
    assert fix in reason
    assert "\n" not in reason


def test_a_plugin_that_is_not_a_runner_is_told_to_derive_from_runner(
    plugins: list[EntryPoint],
) -> None:
    plugins.append(entry("plain", "NotARunner"))
    assert "is not a subclass of horus.runner.Runner; derive from it" in installed().broken["plain"]


def test_an_abstract_plugin_is_told_which_methods_it_lacks(plugins: list[EntryPoint]) -> None:
    plugins.append(entry("abstract", "AbstractRunner"))
    assert "does not implement run;" in installed().broken["abstract"]


def test_a_misnamed_plugin_is_told_both_names(plugins: list[EntryPoint]) -> None:
    plugins.append(entry("misnamed", "MisnamedRunner"))
    reason = installed().broken["misnamed"]
    assert "has name 'other'" in reason
    assert "set `name = 'misnamed'` to match its entry point" in reason


def test_a_plugin_that_fails_to_import_is_told_how_to_fix_it(plugins: list[EntryPoint]) -> None:
    plugins.append(EntryPoint(name="gone", value="tests.unit.no_such_module:R", group=GROUP))
    reason = installed().broken["gone"]
    assert "install" in reason or "entry point" in reason


def test_a_plugin_that_exits_on_import_is_set_aside(plugins: list[EntryPoint]) -> None:
    plugins.extend([entry("exits", "EXITS_ON_LOAD.plugin"), GOOD])
    reg = installed()
    assert list(reg.runners) == ["good"]
    assert "exits" in reg.broken


def test_several_broken_plugins_are_all_reported(plugins: list[EntryPoint]) -> None:
    plugins.extend(
        [entry("plain", "NotARunner"), GOOD, entry("abstract", "AbstractRunner")],
    )
    reg = installed()
    assert set(reg.runners) == {"good"}
    assert set(reg.broken) == {"plain", "abstract"}


def test_get_returns_an_installed_runner(plugins: list[EntryPoint]) -> None:
    plugins.append(GOOD)
    assert isinstance(installed().get("good"), GoodRunner)


def test_get_of_an_unknown_runner_lists_the_installed_ones(plugins: list[EntryPoint]) -> None:
    plugins.extend([GOOD, entry("alpha", "AlphaRunner")])
    with pytest.raises(UnknownRunner) as info:
        installed().get("nope")
    message = str(info.value)
    assert "'nope'" in message
    assert "installed runners are: alpha, good" in message
    assert info.value.runner_id == "nope"


class CrashingValidator(Runner):
    """A plugin whose validate has a bug (raises something other than ValueError)."""

    name = "crashing"

    def validate(self, payload: str, params: dict[str, Any]) -> None:
        raise TypeError("unhashable type: 'list'")

    def run(self, ctx: RunContext) -> Outcome:
        raise AssertionError("never run")


def test_a_plugins_validate_bug_is_a_one_line_refusal_not_a_traceback() -> None:
    with pytest.raises(InvalidJob) as info:
        validate(CrashingValidator(), Job.new("crashing", "x"))
    assert str(info.value) == "invalid job for runner 'crashing': unhashable type: 'list'"


def test_get_with_nothing_installed_says_none(plugins: list[EntryPoint]) -> None:
    with pytest.raises(UnknownRunner, match="installed runners are: none"):
        installed().get("shell")


def test_the_real_registry_has_the_shell_and_python_runners(real_registry: Registry) -> None:
    assert {"shell", "python"} <= set(real_registry.runners)
    assert "shell" not in real_registry.broken
    assert "python" not in real_registry.broken
    for name in ("shell", "python"):
        runner = real_registry.get(name)
        assert runner.name == name
        assert runner.description
