"""What the benchmarks read off the machine: CPU seconds and memory of process trees and of
the brokers, read from /proc and from the brokers themselves, never estimated."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import redis

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def tree(root: int) -> list[int]:
    """``root`` and every process below it, as /proc shows them now."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_seconds(root: int) -> float:
    """CPU seconds used by ``root``'s tree: its live members and the children they reaped."""
    total = 0
    for pid in tree(root):
        if (fields := _stat(pid)) is not None:
            total += sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    return total / TICK


def rss_bytes(root: int) -> int:
    """Resident memory of ``root``'s tree."""
    total = 0
    for pid in tree(root):
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except (OSError, IndexError):
            continue
    return total


def own_cpu() -> float:
    """CPU seconds this process has used."""
    times = os.times()
    return times.user + times.system


class RedisProbe:
    """CPU seconds and memory of a Redis server."""

    def __init__(self, client: redis.Redis[bytes]) -> None:
        self.client = client

    def cpu(self) -> float:
        info = self.client.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    def memory(self) -> int:
        return int(self.client.info("memory")["used_memory"])

    def commands(self) -> int:
        """Commands the server has run, those inside Lua scripts included."""
        stats = self.client.info("commandstats")
        return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


class RabbitProbe:
    """CPU seconds and memory of the RabbitMQ node on this machine (its Erlang VM)."""

    def __init__(self) -> None:
        pids = [
            int(p.name)
            for p in Path("/proc").iterdir()
            if p.name.isdigit() and _comm(p) == "beam.smp"
        ]
        self.pid = pids[0] if pids else None

    def cpu(self) -> float:
        return cpu_seconds(self.pid) if self.pid else float("nan")

    def memory(self) -> int:
        """Bytes the node holds in its queues' processes, from ``rabbitmqctl``; 0 if absent."""
        if shutil.which("rabbitmqctl") is None:
            return 0
        out = subprocess.run(
            ["rabbitmqctl", "-q", "list_queues", "memory"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout
        return sum(int(word) for word in out.split() if word.isdigit())


def _comm(proc: Path) -> str:
    try:
        return (proc / "comm").read_text().strip()
    except OSError:
        return ""
