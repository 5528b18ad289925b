"""Where the CLI shows what a long-running service logs: INFO lines on stdout, warnings and
errors on stderr. A closed pipe (``horus up | head -1``, or a ``tee`` ended by Ctrl-C) stops
the printing, never the service: the stream is pointed at /dev/null and the service goes on
to stop cleanly."""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO


class Console(logging.Handler):
    """Prints each record's message as one line."""

    def emit(self, record: logging.LogRecord) -> None:
        """Write the line; on a closed stream, silence that stream for good."""
        stream: TextIO = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
        try:
            stream.write(record.getMessage() + "\n")
            stream.flush()
        except (OSError, ValueError):  # a closed pipe, or a stream closed already
            _silence(stream)


def _silence(stream: TextIO) -> None:
    """Point ``stream``'s descriptor at /dev/null, so that its later writes and its flush at
    exit succeed quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def show(logger_name: str) -> None:
    """Show what ``logger_name`` logs at INFO and above on the console, and only there."""
    logger = logging.getLogger(logger_name)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if not any(isinstance(h, Console) for h in logger.handlers):
        logger.addHandler(Console())
