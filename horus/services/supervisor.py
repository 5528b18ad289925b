"""``horus up``: the embedded Redis (when no broker is configured), a worker for every
installed runner, the sweeper, and Flower, run in the foreground and stopped together.

Children run in their own sessions so that Ctrl-C reaches only this process, which then
stops them in order: workers first (they finish or hand back their jobs), then Flower, then
Redis, and finally any job process group a dead worker left behind.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import click

from horus import config, registry
from horus.config import Settings, redact
from horus.errors import ConfigError
from horus.messaging.app import make_app
from horus.proc.groups import kill_recorded_groups
from horus.services.embedded import EmbeddedRedis
from horus.trust import bootstrap

#: seconds a worker gets, beyond its shutdown grace, to hand back its jobs and exit
HANDBACK_MARGIN = 10.0
#: restarts allowed to a child that keeps dying, within RESTART_WINDOW seconds
MAX_RESTARTS, RESTART_WINDOW = 5, 60.0


def check_flower_login(address: str) -> None:
    """Refuse to expose Flower beyond localhost without a login."""
    if not loopback(address) and not os.environ.get("FLOWER_BASIC_AUTH"):
        raise ConfigError(
            f"Flower would listen on {address} without a login: set "
            "FLOWER_BASIC_AUTH=user:password, or keep the address 127.0.0.1"
        )


def run_flower(address: str, port: int) -> None:
    """Run Flower in this process (``horus flower``)."""
    check_flower_login(address)
    make_app(config.load()).start(["flower", f"--address={address}", f"--port={port}"])


def loopback(address: str) -> bool:
    """True for an address only this machine can reach."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


@dataclass
class Child:
    """One supervised process."""

    name: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)

    def start(self, env: dict[str, str]) -> None:
        """Start (or restart) the process, appending its output to its log file."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                env=env,
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the child's whole process group."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def stop(self, grace: float) -> None:
        """SIGTERM, then SIGKILL the group after ``grace`` seconds."""
        if self.proc is None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.proc.wait()
        self.signal(signal.SIGKILL)  # whatever the leader left in its group


class Platform:
    """Everything ``horus up`` runs."""

    def __init__(
        self, settings: Settings, concurrency: int, flower_address: str, flower_port: int
    ) -> None:
        check_flower_login(flower_address)
        self.settings = settings
        self.stopping = threading.Event()
        self.redis = (
            EmbeddedRedis(settings.home, settings.embedded_socket)
            if settings.uses_embedded
            else None
        )
        logs = settings.home / "logs"
        horus = [sys.executable, "-m", "horus"]
        self.workers = [
            Child(
                f"worker:{name}",
                [*horus, "worker", "--runner", name, "--concurrency", str(concurrency)],
                logs / f"worker-{name}.log",
            )
            for name in sorted(registry.installed().runners)
        ]
        self.sweeper = Child("sweeper", [*horus, "sweeper"], logs / "sweeper.log")
        self.flower = Child(
            "flower",
            [*horus, "flower", f"--address={flower_address}", f"--port={flower_port}"],
            logs / "flower.log",
        )
        self.flower_url = f"http://{flower_address}:{flower_port}"

    @property
    def children(self) -> list[Child]:
        """Workers first, then the sweeper, then Flower: the order they are stopped in."""
        return [*self.workers, self.sweeper, self.flower]

    def run(self) -> None:
        """Start everything, keep it running until SIGINT/SIGTERM, then stop it all."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stopping.set())
        env = dict(os.environ)
        for line in bootstrap.init(self.settings):  # first run: a key the CLI signs with
            click.echo(f"horus: {line}")
        try:
            if self.redis is not None:
                self.redis.start()
            for child in self.children:
                child.start(env)
            self._banner()
            while not self.stopping.wait(0.5):
                self._revive(env)
        finally:
            self.stop()

    def _banner(self) -> None:
        where = (
            "embedded Redis at " + str(self.settings.embedded_socket)
            if self.redis is not None
            else redact(self.settings.broker_url)
        )
        runners = ", ".join(w.name.split(":", 1)[1] for w in self.workers) or "none"
        click.echo(f"Horus is up: broker {where}")
        click.echo(f"  workers for runners: {runners}")
        click.echo(f"  sweeper: recovers jobs of dead workers (log: {self.sweeper.log})")
        click.echo(f"  Flower: {self.flower_url}")
        click.echo(f"  logs: {self.settings.home / 'logs'}")
        click.echo("Press Ctrl-C to stop.")

    def _revive(self, env: dict[str, str]) -> None:
        for child in self.children:
            if child.proc is None or child.proc.poll() is None or self.stopping.is_set():
                continue
            now = time.monotonic()
            child.restarts = [t for t in child.restarts if now - t < RESTART_WINDOW] + [now]
            if len(child.restarts) > MAX_RESTARTS:
                click.echo(f"horus: {child.name} keeps exiting; see {child.log}", err=True)
                self.stopping.set()
                return
            click.echo(
                f"horus: {child.name} exited ({child.proc.returncode}); restarting", err=True
            )
            child.start(env)

    def stop(self) -> None:
        """Stop workers, then Flower, then Redis; end any job group left behind."""
        click.echo("Stopping Horus...")
        grace = self.settings.timing.shutdown_grace + HANDBACK_MARGIN
        threads = [threading.Thread(target=w.stop, args=(grace,)) for w in self.workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.sweeper.stop(5.0)
        self.flower.stop(5.0)
        kill_recorded_groups(self.settings.groups_dir)
        if self.redis is not None:
            self.redis.stop()
        click.echo("Horus stopped.")
