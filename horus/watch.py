"""Watching one started process from the calling thread: its exit, stdout, stderr, stdin.

One ``poll()`` loop over a pidfd and the pipes: a job costs no extra threads, and the caller
wakes the moment the process exits or writes. Where pidfds are missing (old kernels) the
loop wakes every :data:`FALLBACK_TICK` seconds to look for the exit instead.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import time

#: seconds between exit checks when the kernel offers no pidfd
FALLBACK_TICK = 0.05
CHUNK = 65536


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
        """What was kept, decoded, with a mark if anything was dropped."""
        body = self.kept.decode("utf-8", "replace")
        if self.dropped:
            body += f"\n[horus: output truncated, {self.dropped} more bytes dropped]"
        return body


class Watch:
    """Serves a process's pipes until it exits (see :meth:`until_exit`)."""

    def __init__(self, proc: subprocess.Popen[bytes], stdin: bytes | None, cap: int) -> None:
        assert proc.stdout is not None
        assert proc.stderr is not None
        self.proc = proc
        self.poller = select.poll()
        self.out, self.err = Sink(cap), Sink(cap)
        self.readers = {proc.stdout.fileno(): self.out, proc.stderr.fileno(): self.err}
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
