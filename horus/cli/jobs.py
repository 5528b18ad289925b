"""Commands that submit and inspect jobs: enqueue, status, result, cancel, list."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import click

from horus.cli import bulk
from horus.cli.group import Command, cli
from horus.client import Client
from horus.errors import InvalidJob, JobStateError
from horus.job import JobResult, JobStatus, parse_job
from horus.store.output import Chunk
from horus.trust.signing import DEFAULT_VALIDITY

#: exit code of ``horus enqueue --wait`` for each terminal status
EXIT_CODES = {
    JobStatus.COMPLETED: 0,
    JobStatus.FAILED: 1,
    JobStatus.TIMEOUT: 3,
    JobStatus.CANCELLED: 4,
}


def read_payload(payload: str) -> str:
    """``-`` reads stdin, ``@path`` reads a file, anything else is the payload itself."""
    if payload == "-":
        return sys.stdin.read()
    if payload.startswith("@"):
        path = Path(payload[1:])
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidJob(
                f"cannot read payload file {path}: {exc}; give a readable UTF-8 file"
            ) from None
    return payload


def parse_pairs(pairs: tuple[str, ...], option: str, allow_json: bool) -> dict[str, Any]:
    """``K=V`` gives a string; with ``allow_json``, ``K:=JSON`` gives a JSON value."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if allow_json and ":=" in pair.split("=", 1)[0] + "=":
            key, _, raw = pair.partition(":=")
            try:
                out[key] = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise InvalidJob(
                    f"{option} {pair!r}: the value after := is not JSON ({exc})"
                ) from None
        elif "=" in pair:
            key, _, value = pair.partition("=")
            out[key] = value
        else:
            raise InvalidJob(f"{option} {pair!r} has no '='; write {option} NAME=VALUE")
    return out


def key_option(help_text: str) -> Callable[[Command], Command]:
    """``--key PATH`` (repeatable), given to the command as ``key_paths``."""
    return click.option(
        "--key",
        "-k",
        "key_paths",
        multiple=True,
        type=click.Path(path_type=Path),
        help=help_text,
    )


def read_secrets(pairs: tuple[str, ...]) -> dict[str, str]:
    """``K=V`` gives the value V; ``K`` alone reads K from this process's environment, so
    the value stays out of shell history and process listings."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            if name not in os.environ:
                raise InvalidJob(f"--secret {name}: no {name} in your environment; export it")
            value = os.environ[name]
        out[name] = value
    return out


def print_result(result: JobResult, as_json: bool) -> None:
    """Print a result for people, or as JSON."""
    if as_json:
        click.echo(result.model_dump_json(indent=2))
        return
    rows = [
        ("job", result.job_id),
        ("status", result.status.value),
        ("exit code", result.exit_code),
        ("worker", result.worker),
        ("attempt", result.attempt),
        ("started", result.started_at and result.started_at.isoformat()),
        ("completed", result.completed_at and result.completed_at.isoformat()),
        ("duration", None if result.duration is None else f"{result.duration:.3f}s"),
    ]
    for name, value in rows:
        click.echo(f"{name + ':':<11} {'-' if value is None else value}")
    click.echo("output:")
    click.echo(result.output.rstrip("\n"))
    if result.error:
        click.echo("error:")
        click.echo(result.error.rstrip("\n"))


@cli.command()
@click.argument("runner", required=False)
@click.argument("payload", required=False)
@click.option(
    "--from-file",
    "from_file",
    type=click.File("r", encoding="utf-8"),
    help="Submit every job of this JSON Lines file (one job object per line; - for stdin); "
    "the options below fill the fields a line leaves out.",
)
@click.option("--timeout", "-t", type=int, help="Seconds before the job is killed (default 60).")
@click.option("--env", "-e", "env", multiple=True, metavar="K=V", help="Environment variable.")
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="K=V|K:=JSON",
    help="Runner parameter (string, or JSON after :=).",
)
@click.option("--context", help="Context (circle) the job runs in.")
@click.option("--caller", help="Who asks for the job.")
@click.option("--tag", "tags", multiple=True, help="Free-form tag (repeatable).")
@click.option("--max-attempts", type=int, help="How many times the job may be attempted.")
@click.option(
    "--secret",
    "-s",
    "secrets",
    multiple=True,
    metavar="K[=V]",
    help="Secret env var, sealed to the workers' key; K alone takes the value from your "
    "own environment.",
)
@key_option("Sign with this private key (repeatable); default HORUS_KEY if it exists.")
@click.option(
    "--expires-in",
    type=click.IntRange(1),
    default=DEFAULT_VALIDITY,
    show_default=True,
    help="Seconds the signature stays valid; a worker never starts the job after that.",
)
@click.option(
    "--wait",
    "-w",
    is_flag=True,
    help="Print the job id on stderr, stream the job's output as it comes, exit by status.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def enqueue(
    runner: str | None,
    payload: str | None,
    from_file: IO[str] | None,
    timeout: int | None,
    env: tuple[str, ...],
    params: tuple[str, ...],
    context: str | None,
    caller: str | None,
    tags: tuple[str, ...],
    max_attempts: int | None,
    secrets: tuple[str, ...],
    key_paths: tuple[Path, ...],
    expires_in: int,
    wait: bool,
    as_json: bool,
) -> None:
    """Submit PAYLOAD to RUNNER and print the job id, or every job of --from-file FILE
    and print their ids in line order (a bad line goes to stderr with its number, the others
    go on; exit 1 if any line was not submitted, 5 if the broker could not be reached).

    PAYLOAD '-' reads stdin, '@path' reads a file. With --wait, print the job id on stderr,
    stream the job's output as it comes, and exit 0 if it completed, 1 if it failed, 3 if it
    timed out, 4 if it was cancelled.
    """
    if from_file is not None and (runner is not None or wait or secrets):
        raise InvalidJob(
            "--from-file takes every job from its lines: drop RUNNER PAYLOAD, --wait and "
            "--secret (submit a job that needs them on its own)"
        )
    fields: dict[str, Any] = {
        "env_vars": parse_pairs(env, "--env", allow_json=False),
        "params": parse_pairs(params, "--param", allow_json=True),
        "context_id": context,
        "caller_id": caller,
        "tags": list(tags),
    }
    if timeout is not None:
        fields["timeout"] = timeout
    if max_attempts is not None:
        fields["max_attempts"] = max_attempts
    client = Client(keys=key_paths or None, validity=expires_in)
    if from_file is not None:
        given = {k: v for k, v in fields.items() if v not in ({}, [], None)}
        sys.exit(bulk.enqueue_file(from_file, given, client, as_json))
    if runner is None or payload is None:
        raise InvalidJob("give RUNNER and PAYLOAD (or --from-file FILE); see horus enqueue --help")
    fields.update(runner_id=runner, payload=read_payload(payload))
    job_id = client.submit(parse_job(fields), read_secrets(secrets))
    if not wait:
        click.echo(json.dumps({"id": job_id}) if as_json else job_id)
        return
    if as_json:
        print_result(client.wait(job_id), as_json=True)
        sys.exit(EXIT_CODES[client.get_job_status(job_id)])
    click.echo(job_id, err=True)
    streamed = print_chunks(client.logs(job_id, follow=True))
    result = client.wait(job_id)
    if not streamed:  # nothing came live (the stream was not kept): the result has it
        if result.output:
            click.echo(result.output, nl=not result.output.endswith("\n"))
        if result.error:
            click.echo(result.error, err=True, nl=not result.error.endswith("\n"))
    sys.exit(EXIT_CODES[result.status])


def print_chunks(chunks: Iterable[Chunk]) -> bool:
    """Print a job's output chunks as they come (stdout here, stderr there); True if any
    came."""
    came = False
    for chunk in chunks:
        click.echo(chunk.data, nl=False, err=chunk.stream == "stderr")
        came = True
    return came


@cli.command()
@click.argument("job_id")
@click.option("--follow", "-f", is_flag=True, help="Keep printing what it writes until it ends.")
def logs(job_id: str, follow: bool) -> None:
    """Print what a job wrote so far (stdout and stderr, secrets masked); with -f, follow it
    until it ends."""
    print_chunks(Client().logs(job_id, follow=follow))


@cli.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the whole record as JSON.")
def status(job_id: str, as_json: bool) -> None:
    """Print a job's status: pending, running, completed, failed, timeout or cancelled."""
    client = Client()
    if as_json:
        click.echo(json.dumps(client.get_job(job_id).summary(), indent=2))
    else:
        click.echo(client.get_job_status(job_id).value)


@cli.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--verify",
    is_flag=True,
    help="Check the worker's signature on the result first (exit 1 if it does not hold).",
)
def result(job_id: str, as_json: bool, verify: bool) -> None:
    """Print a finished job's result: status, exit code, output, error and metadata."""
    client = Client()
    if verify:
        signer = client.verify_result(job_id)
        click.echo(f"verified: the result is signed by worker key {signer}", err=True)
    record = client.get_job(job_id)
    if record.result is None:
        raise JobStateError(
            f"job {job_id} is {record.status}; it has no result yet "
            f"(wait with `horus enqueue --wait` or poll `horus status`)"
        )
    print_result(record.result, as_json)


@cli.command()
@click.argument("job_id")
@key_option(
    "Sign the request with this key (default HORUS_KEY); it must have signed the job or be "
    "a canceller in the policy."
)
def cancel(job_id: str, key_paths: tuple[Path, ...]) -> None:
    """Cancel a job: a pending job never starts, a running job is stopped."""
    now = Client(keys=key_paths or None).cancel_job(job_id)
    click.echo(
        "cancelled" if now is JobStatus.CANCELLED else "cancelling: its worker is stopping it"
    )


@cli.command("list")
@click.option("--status", "-s", type=click.Choice([s.value for s in JobStatus]))
@click.option("--runner", "-r", help="Only jobs of this runner.")
@click.option("--context", "-x", help="Only jobs in this context.")
@click.option("--limit", "-n", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_jobs(
    status: str | None, runner: str | None, context: str | None, limit: int, as_json: bool
) -> None:
    """List jobs, newest first."""
    records = Client().list_jobs(
        status=JobStatus(status) if status else None,
        runner_id=runner,
        context_id=context,
        limit=limit,
    )
    if as_json:
        click.echo(json.dumps([r.summary() for r in records], indent=2))
        return
    click.echo(f"{'ID':<34} {'STATUS':<10} {'RUNNER':<12} {'CONTEXT':<16} CREATED")
    for r in records:
        click.echo(
            f"{r.job.id:<34} {r.status.value:<10} {r.job.runner_id:<12} "
            f"{(r.job.context_id or '-'):<16} {r.job.created_at:%Y-%m-%d %H:%M:%S}"
        )
