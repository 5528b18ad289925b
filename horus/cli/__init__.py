"""The ``horus`` command. Errors become one line on stderr and an exit code here, and only
here.

Exit codes: 0 success (with ``--wait``: the job completed); 1 the job failed; 2 bad input
(an invalid job, a usage error); 3 the job timed out; 4 the job was cancelled; 5 the broker
or job store cannot be reached; 6 no such job; 7 the job is not in a state that allows the
request; 130 interrupted.
"""

from __future__ import annotations

import sys
from typing import Any

import click
import redis
from kombu.exceptions import OperationalError

from horus import config
from horus.config import redact
from horus.errors import BrokerUnavailable, HorusError


class HorusGroup(click.Group):
    """A click group that turns Horus errors into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; map errors to messages and exit codes."""
        try:
            return super().invoke(ctx)
        except HorusError as exc:
            _fail(str(exc), exc.exit_code)
        except (redis.ConnectionError, redis.TimeoutError, OperationalError) as exc:
            url = redact(config.load().broker_url)
            _fail(str(BrokerUnavailable(url, str(exc).split("\n")[0])), BrokerUnavailable.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)


def _fail(message: str, code: int) -> None:
    click.echo(f"horus: {message}", err=True)
    sys.exit(code)


@click.group(cls=HorusGroup)
@click.version_option(package_name="horus")
def cli() -> None:
    """Horus: run other people's jobs on Celery workers, safely."""


def main() -> None:
    """Entry point of the ``horus`` console script."""
    from horus.cli import jobs, platform  # noqa: F401  (registers the commands)

    cli()
