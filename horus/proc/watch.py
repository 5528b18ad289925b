"""Watching one started process from the calling thread: its exit, stdout, stderr, stdin.

One ``poll()`` loop over a pidfd and the pipes: a job costs no extra threads, and the caller
wakes the moment the process exits or writes. Where pidfds are missing (old kernels) the
loop wakes every :data:`FALLBACK_TICK` seconds to look for the exit instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import time
from typing import Protocol

#: seconds between exit checks when the kernel offers no pidfd
FALLBACK_TICK = 0.05
CHUNK = 65536


class Tee(Protocol):
    """Where a process's output goes as it comes (the job's live output)."""

    def write(self, stream: str, data: bytes) -> None:
        """Take one chunk of ``stream`` (``stdout`` or ``stderr``)."""


def stored_size(text: str) -> int:
    """The bytes ``text`` takes inside a JSON record (UTF-8, escapes counted)."""
    return len(json.dumps(text, ensure_ascii=False).encode()) - 2


def fit(text: str, cap: int) -> tuple[str, int]:
    """``text`` cut to at most ``cap`` bytes as stored (see :func:`stored_size`), and how
    many characters were cut."""
    if len(text) * 6 <= cap or stored_size(text) <= cap:  # 6: the longest escape
        return text, 0
    low, high = 0, len(text)  # the longest prefix that fits, by bisection
    while low < high:
        middle = (low + high + 1) // 2
        if stored_size(text[:middle]) <= cap:
            low = middle
        else:
            high = middle - 1
    return text[:low], len(text) - low


class Sink:
    """Keeps the first ``cap`` bytes of a stream and counts the rest."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.kept = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        """Take one chunk, keeping what fits under the cap."""
        room = self.cap - len(self.kept)
        self.kept += chunk[:room]
        self.dropped += max(0, len(chunk) - room)

    def text(self) -> str:
        """What was kept, decoded, at most ``cap`` bytes as stored in a JSON record (bytes
        that are not UTF-8 become U+FFFD, which takes three), with a mark if anything was
        dropped."""
        body, cut = fit(self.kept.decode("utf-8", "replace"), self.cap)
        if self.dropped or cut:
            body += f"\n[horus: output truncated, {self.dropped + cut} more bytes dropped]"
        return body

    @property
    def truncated(self) -> bool:
        """True when :meth:`text` leaves something out."""
        return bool(self.dropped) or fit(self.kept.decode("utf-8", "replace"), self.cap)[1] > 0


class Watch:
    """Serves a process's pipes until it exits (see :meth:`until_exit`)."""

    def __init__(
        self, proc: subprocess.Popen[bytes], stdin: bytes | None, cap: int, tee: Tee | None = None
    ) -> None:
        assert proc.stdout is not None
        assert proc.stderr is not None
        self.proc = proc
        self.tee = tee
        self.poller = select.poll()
        self.out, self.err = Sink(cap), Sink(cap)
        self.readers = {proc.stdout.fileno(): self.out, proc.stderr.fileno(): self.err}
        self.names = {proc.stdout.fileno(): "stdout", proc.stderr.fileno(): "stderr"}
        for fd in self.readers:
            self.poller.register(fd, select.POLLIN)
        self.pending = memoryview(stdin or b"")
        self.stdin_fd: int | None = None
        if proc.stdin is not None:
            self.stdin_fd = proc.stdin.fileno()
            os.set_blocking(self.stdin_fd, False)  # a process that never reads cannot stall us
            self.poller.register(self.stdin_fd, select.POLLOUT)
        self.exited = False
        try:
            self.pidfd: int | None = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            self.pidfd = None
        else:
            self.poller.register(self.pidfd, select.POLLIN)

    def until_exit(self, seconds: float) -> bool:
        """Serve the pipes for up to ``seconds``; True as soon as the process has exited."""
        end = time.monotonic() + seconds
        while not self.exited:
            left = max(0.0, end - time.monotonic())
            wait = left if self.pidfd is not None else min(left, FALLBACK_TICK)
            self._serve(self.poller.poll(wait * 1000))
            if self.pidfd is None and self.proc.poll() is not None:
                self.exited = True
            if left <= 0:
                break
        return self.exited

    def drain(self, seconds: float) -> None:
        """Read what is left in the output pipes, until both close or ``seconds`` pass."""
        end = time.monotonic() + seconds
        while self.readers and (left := end - time.monotonic()) > 0:
            self._serve(self.poller.poll(left * 1000))

    def close(self) -> None:
        """Release the pidfd and the pipes."""
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        self._close_stdin()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def _serve(self, events: list[tuple[int, int]]) -> None:
        for fd, _ in events:
            if fd == self.pidfd:
                self.exited = True
                self.poller.unregister(fd)
            elif fd == self.stdin_fd:
                self._write()
            elif fd in self.readers:
                self._read(fd)

    def _read(self, fd: int) -> None:
        chunk = os.read(fd, CHUNK)
        if chunk:
            self.readers[fd].add(chunk)
            if self.tee is not None:
                self.tee.write(self.names[fd], chunk)
        else:  # end of file: every writer closed its end
            self.poller.unregister(fd)
            del self.readers[fd]

    def _write(self) -> None:
        assert self.stdin_fd is not None
        try:
            written = os.write(self.stdin_fd, self.pending[:CHUNK])
        except BlockingIOError:
            return
        except OSError:  # the process closed its stdin: the rest is not wanted
            written = len(self.pending)
        self.pending = self.pending[written:]
        if not self.pending:
            self._close_stdin()

    def _close_stdin(self) -> None:
        if self.stdin_fd is not None:
            self.poller.unregister(self.stdin_fd)
            self.stdin_fd = None
            assert self.proc.stdin is not None
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
