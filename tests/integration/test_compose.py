"""compose.yaml validates and runs the same `horus` commands a user runs by hand."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from typing import Any

import pytest
import yaml

from tests.harness import REPO

PASSWORD = "test-password-1234"


def compose_command() -> list[str] | None:
    """`docker compose` where the plugin exists, else `docker-compose`, else None."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def needed_compose() -> list[str]:
    """The compose command; the test skips without one, and fails in CI (it must run)."""
    command = compose_command()
    if command is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI needs docker compose or docker-compose (.ci/run installs it)")
        pytest.skip("neither docker compose nor docker-compose is installed")
    return command


def config_of(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``compose config`` of compose.yaml with ``env``."""
    return subprocess.run(
        [*command, "-f", "compose.yaml", "config"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    command = needed_compose()
    env = {k: v for k, v in os.environ.items() if k != "FLOWER_BASIC_AUTH"}
    done = config_of(command, {**env, "HORUS_REDIS_PASSWORD": PASSWORD})
    assert done.returncode == 0, done.stderr
    return dict(yaml.safe_load(done.stdout))


def first_party_runners() -> list[str]:
    """The runners the distributions under runners/ register (not what this process has
    installed: the contract suite adds the third-party test runners of tests/plugins)."""
    names: list[str] = []
    for project in sorted((REPO / "runners").glob("*/pyproject.toml")):
        meta = tomllib.loads(project.read_text())["project"]
        names += meta["entry-points"]["horus.runners"]
    return names


def test_first_party_runners_are_the_folders_under_runners() -> None:
    assert first_party_runners() == sorted(
        p.parent.name for p in REPO.glob("runners/*/pyproject.toml")
    )


def test_compose_has_a_worker_service_per_first_party_runner(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for runner in first_party_runners():
        command = services[f"worker-{runner}"]["command"]
        assert command[:4] == ["horus", "worker", "--runner", runner]
        assert services[f"worker-{runner}"]["environment"]["HORUS_BROKER_URL"].startswith(
            "redis://"
        )


def test_compose_redis_needs_a_password_every_service_gives(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]["command"]
    assert redis[redis.index("--requirepass") + 1] == PASSWORD
    for name, service in compose["services"].items():
        for variable in ("HORUS_BROKER_URL", "HORUS_RESULT_BACKEND"):
            url = service.get("environment", {}).get(variable)
            assert url is None or url.startswith(f"redis://:{PASSWORD}@redis:"), name


def test_compose_refuses_to_start_without_a_redis_password() -> None:
    command = needed_compose()
    env = {k: v for k, v in os.environ.items() if k != "HORUS_REDIS_PASSWORD"}
    done = config_of(command, env)
    assert done.returncode != 0
    assert "HORUS_REDIS_PASSWORD" in done.stderr


def test_the_workers_may_make_sandboxes(compose: dict[str, Any]) -> None:
    for runner in first_party_runners():
        assert "seccomp=unconfined" in compose["services"][f"worker-{runner}"]["security_opt"]
    assert "bubblewrap" in (REPO / "Dockerfile").read_text()


def test_compose_redis_persists_and_flower_runs_the_horus_command(
    compose: dict[str, Any],
) -> None:
    redis = compose["services"]["redis"]
    assert "--appendonly" in redis["command"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert redis["volumes"]
    assert compose["services"]["flower"]["command"][:2] == ["horus", "flower"]


def test_compose_makes_keys_and_policy_once_and_workers_share_them(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert services["init"]["command"] == ["horus", "init"]
    assert services["sweeper"]["command"] == ["horus", "sweeper"]
    for runner in first_party_runners():
        worker = services[f"worker-{runner}"]
        assert worker["depends_on"]["init"]["condition"] == "service_completed_successfully"
        assert any("/home/horus/.horus" in str(v) for v in worker["volumes"])


def test_the_image_makes_horus_home_as_the_horus_user() -> None:
    """Docker seeds a new named volume with the image's directory, owner included: made by
    root (or not at all), `horus init` could not write the keys into horus-home."""
    lines = [line.strip() for line in (REPO / "Dockerfile").read_text().splitlines()]
    user = lines.index("USER horus")
    assert "RUN mkdir -p /home/horus/.horus" in lines[user:]
