"""How the child interpreter of python jobs and library calls is started: without ``site``
(``-S``, faster) only where ``site`` would run no code of the installation's."""

from __future__ import annotations

import site
from collections.abc import Iterator
from pathlib import Path

import pytest

from horus.runner import child_interpreter, site_runs_code


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    (tmp_path / "plain.pth").write_text("/some/project\n# a comment\n")
    (tmp_path / "distutils-precedence.pth").write_text("import os; os.environ.get('X')\n")
    return tmp_path


@pytest.fixture
def fresh() -> Iterator[None]:
    child_interpreter.cache_clear()
    yield
    child_interpreter.cache_clear()


def test_path_lines_and_setuptools_distutils_shim_run_no_code(site_dir: Path) -> None:
    assert not site_runs_code([str(site_dir)], [str(site_dir)])


def test_a_pth_import_line_is_code_site_runs(site_dir: Path) -> None:
    (site_dir / "__editable___proj_finder.pth").write_text("import __editable___proj_finder\n")
    assert site_runs_code([str(site_dir)], [])


def test_a_sitecustomize_on_the_path_is_code_site_runs(site_dir: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "lib"
    elsewhere.mkdir()
    (elsewhere / "sitecustomize.py").write_text("")
    assert site_runs_code([str(site_dir)], [str(elsewhere)])


def test_the_child_keeps_site_where_the_installation_has_hooks(
    site_dir: Path, monkeypatch: pytest.MonkeyPatch, fresh: None
) -> None:
    monkeypatch.setattr(site, "getsitepackages", lambda: [str(site_dir)])
    assert "-S" in child_interpreter()
    child_interpreter.cache_clear()
    (site_dir / "hook.pth").write_text("import hook_installer\n")
    argv = child_interpreter()
    assert "-S" not in argv
    assert argv[1] == "-I"  # isolated either way
