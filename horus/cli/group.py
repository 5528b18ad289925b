"""The ``horus`` click group: Horus errors become one line on stderr and an exit code
here, and only here (codes in :mod:`horus.cli`)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click
import redis
from kombu.exceptions import OperationalError

from horus import config
from horus.config import redact
from horus.errors import BrokerUnavailable, HorusError

#: a click command function, as option decorators take and return it
Command = Callable[..., Any]


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
