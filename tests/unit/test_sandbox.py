"""The sandbox a job gets: what bubblewrap is told to show and hide, the user a root worker
drops to, the limits, and the one decision from a grant to a sandbox."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import ValidationError

from horus import config
from horus.errors import InvalidJob
from horus.execution import isolation
from horus.execution.isolation import NoSandbox
from horus.job import parse_job
from horus.proc import tools
from horus.proc.sandbox import Limits, Sandbox
from horus.trust.policy import Grant, GrantLimits, hijacks

SETTINGS = config.load()


def test_a_hidden_path_under_a_readable_one_is_covered(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "policy.toml").write_text("")
    box = Sandbox(readable=(tmp_path,), hidden=(tmp_path / "home", tmp_path / "policy.toml"))
    argv = box.command(["true"], tmp_path / "work")
    assert has(argv, ["--ro-bind-try", str(tmp_path), str(tmp_path)])
    assert has(argv, ["--tmpfs", str(tmp_path / "home")])
    assert has(argv, ["--ro-bind", "/dev/null", str(tmp_path / "policy.toml")])


def has(argv: list[str], part: list[str]) -> bool:
    """True when ``part`` appears in ``argv`` as consecutive arguments."""
    return any(argv[i : i + len(part)] == part for i in range(len(argv)))


def test_a_hidden_path_nobody_shows_is_not_mounted_over(tmp_path: Path) -> None:
    argv = Sandbox(hidden=(tmp_path,)).command(["true"], Path("/tmp/w"))
    assert str(tmp_path) not in argv


def test_the_network_is_off_unless_the_sandbox_allows_it() -> None:
    off = Sandbox().command(["true"], Path("/tmp/w"))
    on = Sandbox(network=True).command(["true"], Path("/tmp/w"))
    if os.geteuid() == 0:
        assert "--unshare-net" in off
        assert "--unshare-net" not in on
    else:
        assert "--share-net" not in off
        assert "--share-net" in on


@pytest.mark.skipif(os.geteuid() != 0, reason="a root worker's sandbox")
def test_a_root_worker_runs_the_job_as_a_user_of_its_own_without_capabilities() -> None:
    argv = Sandbox().command(["true"], Path("/tmp/w"))
    drop = argv[argv.index(tools.path("setpriv")) :]
    assert f"--reuid={1_000_000 + os.getpid()}" in drop
    assert "--no-new-privs" in drop
    assert "--bounding-set=-all" in drop
    assert drop[drop.index(tools.path("unshare")) + 1] == "--user"


def test_limits_become_a_prlimit_command() -> None:
    limits = Limits(memory_mb=64, cpu_seconds=2, file_mb=1, processes=8)
    assert limits.prlimit() == [
        tools.path("prlimit"),
        f"--as={64 * 1024 * 1024}",
        "--cpu=2:3",
        f"--fsize={1024 * 1024}",
        "--nproc=8",
        "--",
    ]
    assert Limits().prlimit() == []


def test_a_grant_without_a_sandbox_runs_the_job_without_one() -> None:
    grant = Grant(who=(), unsigned=True, runners=("shell",), sandbox="none")
    assert isolation.for_job(grant, SETTINGS, "shell").sandbox is None


def test_a_job_that_needs_a_sandbox_this_machine_cannot_make_is_refused() -> None:
    missing = replace(SETTINGS, bwrap="/nonexistent/bwrap")
    grant = Grant(who=(), unsigned=True, runners=("shell",))
    with pytest.raises(NoSandbox, match=r"cannot sandbox jobs: .*apt install bubblewrap"):
        isolation.for_job(grant, missing, "shell")


def test_the_grants_limits_and_paths_reach_the_sandbox() -> None:
    grant = Grant(
        who=(),
        unsigned=True,
        runners=("shell",),
        writable=("/srv/out",),
        limits=GrantLimits(output_kb=4, workdir_mb=2, processes=5),
    )
    got = isolation.for_job(grant, SETTINGS, "shell")
    assert got.output_cap == 4096
    assert got.workdir_bytes == 2 * 1024 * 1024
    assert got.sandbox is not None
    assert got.sandbox.writable == (Path("/srv/out"),)
    assert got.sandbox.limits.file_mb == 2  # a single file is held to the workdir's size
    assert SETTINGS.home in got.sandbox.hidden


@pytest.mark.parametrize("path", ["srv/data", "/srv/../etc", ""])
def test_a_grant_path_must_be_absolute(path: str) -> None:
    with pytest.raises(ValidationError, match="absolute path"):
        Grant(who=(), unsigned=True, runners=("shell",), readable=(path,))


@pytest.mark.parametrize("name", ["HORUS_JOB_ID", "HORUS_ATTEMPT", "horus_x"])
def test_a_job_may_not_set_horus_names(name: str) -> None:
    with pytest.raises(InvalidJob, match="is reserved"):
        parse_job({"runner_id": "shell", "payload": "true", "env_vars": {name: "x"}})


@pytest.mark.parametrize(
    "name",
    [
        "GIT_EXTERNAL_DIFF",
        "GIT_ASKPASS",
        "GIT_PROXY_COMMAND",
        "GIT_PAGER",
        "PAGER",
        "EDITOR",
        "VISUAL",
        "BROWSER",
        "SSH_ASKPASS",
        "LESSOPEN",
        "SYSTEMD_PAGER",
    ],
)
def test_whole_families_of_hijacking_names_need_an_exact_grant(name: str) -> None:
    assert hijacks(name)


def test_ordinary_names_are_not_hijacks() -> None:
    assert not any(hijacks(n) for n in ("APP_MODE", "DB_HOST", "HOME", "LANG"))


def test_the_programs_that_start_a_job_are_named_by_absolute_path() -> None:
    argv = Sandbox(limits=Limits(processes=8)).command(["true"], Path("/tmp/w"))
    helpers = [a for a in argv if Path(a).name in ("bwrap", "setpriv", "unshare", "prlimit")]
    assert len(helpers) == (4 if os.geteuid() == 0 else 2)
    assert all(Path(a).is_absolute() for a in helpers)
