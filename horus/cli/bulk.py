"""``horus enqueue --from-file``: many jobs from a JSON Lines file, one job per line.

Each line is a job object (the fields of ``horus enqueue --json``'s jobs: ``runner_id``,
``payload``, ``timeout``...); the command's own job options fill the fields a line leaves
out. Every good line is submitted through :meth:`horus.client.Client.submit_many` (records
in batches, messages over one connection); a bad line is reported on stderr with its line
number and the others go on. The ids go to stdout in line order, one per line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import IO, Any

import click

from horus import jsontext
from horus.client import BATCH, Client, Submitted
from horus.errors import BrokerUnavailable


def read_lines(stream: IO[str], defaults: dict[str, Any]) -> Iterator[tuple[int, Any]]:
    """``(line number, job fields or the reason the line is bad)`` for each non-blank line."""
    for number, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        try:
            fields = jsontext.loads(text, what="the line")
        except ValueError as exc:
            yield number, f"{str(exc).splitlines()[0]}; give one job object per line"
            continue
        if not isinstance(fields, dict):
            yield number, "the line is not a JSON object; give one job object per line"
            continue
        yield number, {**defaults, **fields}


def enqueue_file(stream: IO[str], defaults: dict[str, Any], client: Client, as_json: bool) -> int:
    """Submit every job of ``stream``; returns the exit status: 0 when every line was
    submitted, 5 when the broker or the job store could not be reached for some, else 1."""
    lines = list(read_lines(stream, defaults))
    good = [(n, fields) for n, fields in lines if isinstance(fields, dict)]
    outcomes = {n: Submitted(None, reason) for n, reason in lines if isinstance(reason, str)}
    jobs = (fields for _, fields in good)
    if sys.stderr.isatty() and len(good) > BATCH:  # a progress bar, on a terminal only
        with click.progressbar(length=len(good), label="submitting", file=sys.stderr) as bar:
            done = client.submit_many(jobs, progress=bar.update)
    else:
        done = client.submit_many(jobs)
    outcomes.update((n, submitted) for (n, _), submitted in zip(good, done, strict=True))
    failed = sum(report(n, outcomes[n], as_json) for n in sorted(outcomes))
    if any(s.unreached for s in outcomes.values()):
        return BrokerUnavailable.exit_code
    return 1 if failed else 0


def report(number: int, submitted: Submitted, as_json: bool) -> int:
    """Print one line's outcome (its id on stdout, or its error on stderr); 1 if it failed."""
    if as_json:
        shown = {"line": number, "id": submitted.id, "error": submitted.error}
        click.echo(json.dumps({k: v for k, v in shown.items() if v is not None}))
    elif submitted.id is not None:
        click.echo(submitted.id)
    else:
        click.echo(f"line {number}: {submitted.error}", err=True)
    return submitted.id is None
