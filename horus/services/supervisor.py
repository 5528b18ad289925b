"""``horus up``: the embedded Redis (when no broker is configured), a worker for every
installed runner, the sweeper, Flower and the metrics endpoint, run in the foreground and
stopped together.

Children run in their own sessions so that Ctrl-C reaches only this process, which then
stops them in order: workers first (they finish or hand back their jobs), then Flower, then
Redis, and finally any job process group a dead worker left behind. A service that exits
at its start, or keeps exiting, stops the platform with :class:`ServiceFailed`.

This module prints nothing: what it has to say goes to the ``horus.platform`` logger, at
INFO for the banner and the job feed, at WARNING for restarts; the CLI shows it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from prometheus_client import start_http_server

from horus import config, registry
from horus.config import Settings, redact
from horus.errors import ConfigError, HorusError, ServiceFailed
from horus.execution import isolation
from horus.messaging.app import make_app
from horus.proc.groups import kill_recorded_groups
from horus.services import pidfile
from horus.services.embedded import EmbeddedRedis
from horus.services.metrics import registry_for
from horus.store import feed
from horus.store.records import Store
from horus.trust import bootstrap

log = logging.getLogger("horus.platform")

#: seconds a worker gets, beyond its shutdown grace, to hand back its jobs and exit
HANDBACK_MARGIN = 10.0
#: restarts allowed to a child that keeps dying, within RESTART_WINDOW seconds
MAX_RESTARTS, RESTART_WINDOW = 5, 60.0
#: a service that exits within this many seconds of its first start did not start
STARTUP = 5.0
#: where ``horus up`` serves the metrics by default (the Prometheus exporter convention)
METRICS_PORT = 9464


def check_flower_login(address: str) -> None:
    """Refuse to expose Flower beyond localhost without a login."""
    if not loopback(address) and not os.environ.get("FLOWER_BASIC_AUTH"):
        raise ConfigError(
            f"Flower would listen on {address} without a login: set "
            "FLOWER_BASIC_AUTH=user:password, or keep the address 127.0.0.1"
        )


#: Flower's endpoints that send tasks or move workers: never served (the workers would
#: refuse an unsigned task and ignore remote control anyway; closed, nobody tries)
FLOWER_WRITES = re.compile(
    r"^/api/(worker/(shutdown|pool|queue)/|task/(apply|async-apply|send-task|abort|timeout|"
    r"rate-limit|revoke)/)"
)


def close_flower_controls() -> None:
    """Drop Flower's task-sending and control endpoints from what it serves (they answer
    404 like any unknown page)."""
    import flower.app
    import flower.urls

    def path(handler: Any) -> str:
        return str(handler.regex.pattern if hasattr(handler, "regex") else handler[0])

    flower.app.default_handlers = [
        h for h in flower.urls.handlers if not FLOWER_WRITES.match(path(h))
    ]


def run_flower(address: str, port: int) -> None:
    """Run Flower in this process (``horus flower``), read-only."""
    check_flower_login(address)
    close_flower_controls()
    make_app(config.load()).start(["flower", f"--address={address}", f"--port={port}"])


def loopback(address: str) -> bool:
    """True for an address only this machine can reach."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def check_port(address: str, port: int, what: str, option: str) -> None:
    """Refuse a port another process holds, before anything starts."""
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as exc:
            raise ConfigError(
                f"{what} cannot listen on {address}:{port} ({exc.strerror}): stop what "
                f"holds the port, or pick another with {option}"
            ) from None


def last_line(log_file: Path) -> str:
    """The last non-empty line of a log file, for a one-line cause."""
    try:
        with log_file.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 8192))
            lines = [x.strip() for x in f.read().decode(errors="replace").splitlines()]
    except OSError:
        return "no log"
    return next((x for x in reversed(lines) if x), "nothing logged")


@dataclass
class Restarts:
    """The restart budget of one service."""

    name: str
    log: Path
    first_start: float = 0.0
    times: list[float] = field(default_factory=list)

    def started(self) -> None:
        """Note a start; the first one opens the start-up window."""
        if not self.first_start:
            self.first_start = time.monotonic()

    def exited(self, code: int | None) -> None:
        """Note an exit: raise :class:`ServiceFailed` if it failed to start or keeps exiting,
        else warn that it is restarted."""
        now = time.monotonic()
        cause = f"{last_line(self.log)} (log: {self.log})"
        if not self.times and now - self.first_start < STARTUP:
            raise ServiceFailed(f"{self.name} exited at start with code {code}: {cause}")
        self.times = [t for t in self.times if now - t < RESTART_WINDOW] + [now]
        if len(self.times) > MAX_RESTARTS:
            raise ServiceFailed(
                f"{self.name} exited {len(self.times)} times in {RESTART_WINDOW:g} s: {cause}"
            )
        log.warning("horus: %s exited (code %s); restarting", self.name, code)


@dataclass
class Child:
    """One supervised process."""

    name: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: Restarts = field(init=False)

    def __post_init__(self) -> None:
        self.restarts = Restarts(self.name, self.log)

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
        self.restarts.started()

    def exited(self) -> int | None:
        """The exit code if the process has exited, else None."""
        return None if self.proc is None else self.proc.poll()

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the child's whole process group, the leader gone or not (a
        group's id is not reused while any process is left in it)."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
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
        self,
        settings: Settings,
        concurrency: int,
        flower: tuple[str, int] = ("127.0.0.1", 5555),
        metrics_port: int = METRICS_PORT,
        quiet: bool = False,
    ) -> None:
        check_flower_login(flower[0])
        self.settings = settings
        self.quiet = quiet
        self.metrics_port = metrics_port
        self.stopping = threading.Event()
        self.redis = (
            EmbeddedRedis(settings.home, settings.embedded_socket)
            if settings.uses_embedded
            else None
        )
        self.redis_restarts = Restarts("the embedded Redis", settings.home / "redis.log")
        logs = settings.home / "logs"
        horus = [sys.executable, "-m", "horus"]
        self.workers = [
            Child(
                f"the {name} worker",
                [*horus, "worker", "--runner", name, "--concurrency", str(concurrency)],
                logs / f"worker-{name}.log",
            )
            for name in sorted(registry.installed().runners)
        ]
        self.sweeper = Child("the sweeper", [*horus, "sweeper"], logs / "sweeper.log")
        address, port = flower
        self.flower_address = (address, port)
        self.flower = Child(
            "Flower",
            [*horus, "flower", f"--address={address}", f"--port={port}"],
            logs / "flower.log",
        )
        self.flower_url = f"http://{address}:{port}"
        self._metrics: Any = None
        self._threads: list[threading.Thread] = []

    @property
    def children(self) -> list[Child]:
        """Workers first, then the sweeper, then Flower: the order they are stopped in."""
        return [*self.workers, self.sweeper, self.flower]

    def run(self) -> None:
        """Start everything, keep it running until SIGINT/SIGTERM/SIGHUP, then stop it all.
        Raises :class:`ServiceFailed` (after stopping the rest) when a service fails."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda *_: self.stopping.set())
        home = self.settings.home
        pidfile.claim(home)  # refuses a second `horus up` of this HORUS_HOME
        try:
            check_port(*self.flower_address, "Flower", "--flower-port")
            if self.metrics_port:
                check_port("127.0.0.1", self.metrics_port, "The metrics endpoint", "--metrics-port")
            for line in bootstrap.init(self.settings):  # first run: a key the CLI signs with
                log.info("horus: %s", line)
            # its workers send the task events Flower shows (HORUS_TASK_EVENTS=0: none)
            env = {**os.environ, "HORUS_TASK_EVENTS": os.environ.get("HORUS_TASK_EVENTS", "1")}
            try:
                if self.redis is not None:
                    self.redis.start()
                    self.redis_restarts.started()
                for child in self.children:
                    child.start(env)
                self._serve()
                self._banner()
                while not self.stopping.wait(0.5):
                    self._revive(env)
            finally:
                self.stop()
        finally:
            pidfile.release(home)

    def _serve(self) -> None:
        """Serve the metrics and follow the job feed, each on a thread of its own."""
        store = Store(self.settings)
        if self.metrics_port:
            self._metrics = start_http_server(
                self.metrics_port, addr="127.0.0.1", registry=registry_for(store)
            )
        if not self.quiet:
            thread = threading.Thread(target=self._feed, args=(store,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _feed(self, store: Store) -> None:
        """Log a line per job start and end, riding out store outages."""
        while not self.stopping.is_set():
            try:
                for line in feed.follow(store, self.stopping):
                    log.info("%s", job_line(line))
            except (HorusError, redis.RedisError, OSError):
                self.stopping.wait(1.0)

    def _banner(self) -> None:
        where = (
            "embedded Redis at " + str(self.settings.embedded_socket)
            if self.redis is not None
            else redact(self.settings.broker_url)
        )
        runners = ", ".join(w.name.split()[1] for w in self.workers) or "none"
        log.info("Horus is up: broker %s", where)
        log.info("  workers for runners: %s", runners)
        log.info("  %s", isolation.describe(self.settings))
        log.info("  sweeper: recovers jobs of dead workers (log: %s)", self.sweeper.log)
        log.info("  Flower: %s", self.flower_url)
        if self.metrics_port:
            log.info("  metrics: http://127.0.0.1:%d/metrics", self.metrics_port)
        log.info("  logs: %s", self.settings.home / "logs")
        log.info("Press Ctrl-C to stop (or run `horus down`).")

    def _revive(self, env: dict[str, str]) -> None:
        """Restart what exited; raise :class:`ServiceFailed` for what cannot stay up."""
        if self.redis is not None and self.redis.proc is not None:
            code = self.redis.proc.poll()
            if code is not None and not self.stopping.is_set():
                self.redis_restarts.exited(code)
                self.redis.start()
                self.redis_restarts.started()
        for child in self.children:
            code = child.exited()
            if code is None or self.stopping.is_set():
                continue
            child.restarts.exited(code)
            child.start(env)

    def stop(self) -> None:
        """Stop workers, then Flower, then Redis; end any job group left behind."""
        self.stopping.set()
        log.info("Stopping Horus...")
        grace = self.settings.timing.shutdown_grace + HANDBACK_MARGIN
        threads = [threading.Thread(target=w.stop, args=(grace,)) for w in self.workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.sweeper.stop(5.0)
        self.flower.stop(5.0)
        kill_recorded_groups(self.settings.groups_dir)
        for thread in self._threads:
            thread.join(2.0)
        if self._metrics is not None:
            server, thread = self._metrics
            server.shutdown()
            server.server_close()
            thread.join(2.0)
        if self.redis is not None:
            self.redis.stop()
        log.info("Horus stopped.")


def job_line(line: dict[str, Any]) -> str:
    """One job start or end as ``horus up`` prints it: time, id, runner, status, and the
    attempt (on a start) or the duration (on an end)."""
    status = str(line.get("status", ""))
    ending = line.get("ending")
    if ending and ending != status:
        status = f"{status} ({ending})"
    if line.get("status") == "running":
        status, tail = "started", f"attempt {line.get('attempt')}"
    elif isinstance(line.get("duration"), (int, float)):
        tail = f"{line['duration']:.2f} s"
    else:
        tail = ""
    return (
        f"{time.strftime('%H:%M:%S')}  {line.get('id')}  {line.get('runner')}  {status}  {tail}"
    ).rstrip()
