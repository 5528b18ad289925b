"""Commands about trust: init, keys generate/show, policy check, audit."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from horus import config
from horus.cli.group import cli
from horus.store.audit import Audit
from horus.store.records import Store
from horus.trust import keys
from horus.trust.bootstrap import init as init_trust
from horus.trust.policy import PolicyFile


@cli.command()
def init() -> None:
    """Make what a first run needs and is missing: the signing key the CLI uses, the worker
    key secrets are sealed to, and a policy that trusts the signing key. `horus up` runs
    this itself; nothing that exists is replaced."""
    settings = config.load()
    made = init_trust(settings)
    for line in made:
        click.echo(line)
    if not made:
        click.echo(f"nothing to do: keys and policy exist under {settings.home}")


@cli.group("keys")
def keys_group() -> None:
    """Make and show ed25519 keys."""


@keys_group.command()
@click.option(
    "--out", "-o", type=click.Path(path_type=Path), help="Private key file (default HORUS_KEY)."
)
@click.option("--force", is_flag=True, help="Replace an existing key file.")
def generate(out: Path | None, force: bool) -> None:
    """Make an ed25519 key pair; the private file is readable by its owner only. Prints the
    public key (ed25519:<base64>), the text policies and signatures name it by."""
    path = out or config.load().key_path
    key = keys.generate(path, force=force)
    click.echo(keys.public_text(key))
    click.echo(f"private key written to {path}", err=True)


@keys_group.command()
@click.argument("path", required=False, type=click.Path(path_type=Path))
def show(path: Path | None) -> None:
    """Print the public key of a private key file (default HORUS_KEY)."""
    click.echo(keys.public_text(keys.load(path or config.load().key_path)))


@cli.group()
def policy() -> None:
    """Check the policy: who may run what where."""


@policy.command()
@click.argument("path", required=False, type=click.Path(path_type=Path))
def check(path: Path | None) -> None:
    """Validate a policy file (default HORUS_POLICY) and summarise it."""
    where = path or config.load().policy_path
    loaded = PolicyFile(where).current()
    click.echo(
        f"{where}: valid; {len(loaded.circles)} circles, {len(loaded.grants)} grants, "
        f"secrets_key {'set' if loaded.secrets_key else 'not set'}"
    )
    for n, grant in enumerate(loaded.grants, 1):
        who = "anyone, unsigned too" if grant.unsigned else ", ".join(grant.who)
        click.echo(
            f"  grant {n}: {who} -> runners {', '.join(grant.runners)} in contexts "
            f"{', '.join(grant.contexts)}; max timeout {grant.max_timeout} s; env "
            f"{', '.join(grant.env) or 'none'}; {grant.signatures} signature(s)"
        )


@cli.group(invoke_without_command=True)
@click.pass_context
@click.option("--job", "job_id", help="Only decisions about this job.")
@click.option("--limit", "-n", default=50, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def audit(ctx: click.Context, job_id: str | None, limit: int, as_json: bool) -> None:
    """List decisions to run or refuse jobs and to honour cancel requests, newest first
    (`horus audit verify` checks the chain)."""
    if ctx.invoked_subcommand is not None:
        return
    entries = Audit(Store(config.load())).entries(job_id, limit)
    if as_json:
        click.echo(json.dumps([asdict(e) for e in entries], indent=2))
        return
    click.echo(f"{'TIME':<19}  {'DECISION':<8} {'ACTION':<6} {'JOB':<34} {'RUNNER':<10} SIGNERS")
    for entry in entries:
        click.echo(entry.line())


@audit.command("verify")
def audit_verify() -> None:
    """Check that no audit entry was changed or removed since it was written; exit 1 naming
    the first one that was."""
    checked = Audit(Store(config.load())).verify()
    if not checked.entries:
        click.echo("the audit is empty: nothing to verify")
        return
    click.echo(
        f"the audit holds: {checked.entries} entries, {checked.first} to {checked.last}, "
        "each following the one before"
    )
