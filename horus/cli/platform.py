"""Commands that run the platform: up, down, flower, worker, sweeper, runners, schema,
doctor, metrics."""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Callable

import click
from prometheus_client import generate_latest

from horus import config, registry
from horus.cli.console import show
from horus.cli.group import Command, cli
from horus.client import Client
from horus.execution import boot
from horus.job import Job, JobResult
from horus.messaging.app import make_app
from horus.services import doctor as doctor_checks
from horus.services import pidfile
from horus.services.metrics import registry_for
from horus.services.supervisor import HANDBACK_MARGIN, METRICS_PORT, Platform, run_flower
from horus.services.sweeper import Sweeper
from horus.store.lifecycle import Lifecycle
from horus.store.records import Store
from horus.subscribers import default_bus


def flower_options(prefix: str = "") -> Callable[[Command], Command]:
    """The address and port options of Flower, as ``--{prefix}address`` / ``--{prefix}port``."""

    def decorate(command: Command) -> Command:
        command = click.option(
            f"--{prefix}port", default=5555, show_default=True, help="Port Flower listens on."
        )(command)
        return click.option(
            f"--{prefix}address",
            default="127.0.0.1",
            show_default=True,
            help="Address Flower listens on; beyond localhost it needs FLOWER_BASIC_AUTH.",
        )(command)

    return decorate


@cli.command()
@click.option(
    "--concurrency",
    "-c",
    default=2,
    show_default=True,
    help="Jobs each runner's worker runs at once.",
)
@flower_options("flower-")
@click.option(
    "--metrics-port",
    default=METRICS_PORT,
    show_default=True,
    help="Loopback port the Prometheus metrics are served on (0: do not serve them).",
)
@click.option("--quiet", "-q", is_flag=True, help="No line per job start and end.")
def up(
    concurrency: int, flower_address: str, flower_port: int, metrics_port: int, quiet: bool
) -> None:
    """Start the platform in the foreground: Redis (embedded unless HORUS_BROKER_URL is
    set), a worker for every installed runner, the sweeper, Flower and the metrics. Prints
    a line per job start and end. Ctrl-C, SIGTERM or `horus down` stops all of it."""
    show("horus.platform")
    settings = config.load()
    Platform(settings, concurrency, (flower_address, flower_port), metrics_port, quiet).run()


@cli.command()
@click.option(
    "--timeout",
    type=float,
    help="Seconds to wait for it to stop (default: the workers' shutdown grace + 30).",
)
def down(timeout: float | None) -> None:
    """Stop the `horus up` of this HORUS_HOME, and wait until everything it ran is gone."""
    settings = config.load()
    wait = timeout if timeout is not None else settings.timing.shutdown_grace + HANDBACK_MARGIN + 30
    pid = pidfile.stop(settings.home, wait)
    if pid is None:
        click.echo(f"Horus is not up with HORUS_HOME={settings.home}.", err=True)
        return
    click.echo(f"Horus stopped (pid {pid}).")


@cli.command()
@flower_options()
def flower(address: str, port: int) -> None:
    """Run Flower, the web monitor, on the Horus broker."""
    run_flower(address, port)


@cli.command()
@click.option(
    "--runner",
    "-r",
    "runners",
    multiple=True,
    help="Runner to serve (repeatable); default: every installed runner.",
)
@click.option(
    "--concurrency", "-c", default=2, show_default=True, help="Jobs this worker runs at once."
)
@click.option("--loglevel", "-l", default="INFO", show_default=True)
def worker(runners: tuple[str, ...], concurrency: int, loglevel: str) -> None:
    """Run a worker consuming the queues horus.<runner> of the given runners."""
    ctx = boot.prepare(list(runners))
    for line in boot.warnings(ctx):
        click.echo(f"horus worker: warning: {line}", err=True)
    boot.run_worker(ctx, concurrency, loglevel)


@cli.command()
@click.option("--once", is_flag=True, help="Sweep once, print what it did, and exit.")
def sweeper(once: bool) -> None:
    """Recover jobs: take back running jobs whose worker died (their lease expired),
    publish due retries, and publish again messages that vanished. `horus up` runs one;
    run one (or more) next to workers on other machines."""
    settings = config.load()
    store = Store(settings)
    sweeper = Sweeper(Lifecycle(store, default_bus(store)), make_app(settings), settled=once)
    if once:
        click.echo(json.dumps(sweeper.sweep().__dict__))
        return
    # Running, it rides out broker outages: each failed sweep is logged and tried again.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    timing = settings.timing
    click.echo(
        f"horus sweeper: every {timing.sweep_interval:g} s; leases {timing.lease:g} s",
        err=True,
    )
    sweeper.run(stop)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def runners(as_json: bool) -> None:
    """List installed runners and the live workers that serve them."""
    table = Client().runners()
    if as_json:
        click.echo(json.dumps(table, indent=2, sort_keys=True))
        return
    click.echo(f"{'RUNNER':<16} {'WORKERS':<8} DESCRIPTION")
    for name, row in sorted(table.items()):
        flag = "" if row["installed"] else " (not installed here)"
        click.echo(f"{name:<16} {len(row['workers']):<8} {row['description']}{flag}")
        for worker_name in row["workers"]:
            click.echo(f"{'':<16} - {worker_name}")


@cli.command()
@click.argument("what", type=click.Choice(["job", "result", "runner"]))
@click.argument("name", required=False)
def schema(what: str, name: str | None) -> None:
    """Print the JSON schema of a job, of a job result, or of runner NAME's params."""
    if what == "runner":
        installed = registry.installed()
        if name is None:
            names = ", ".join(sorted(installed.runners)) or "none installed"
            raise click.UsageError(f"name the runner: horus schema runner NAME ({names})")
        model = installed.get(name).Params
    else:
        model = Job if what == "job" else JobResult
    click.echo(json.dumps(model.model_json_schema(), indent=2))


@cli.command()
def doctor() -> None:
    """Check that this machine can run jobs safely: the sandbox, the process tools, the
    policy and the store. Exits 1 if one fails."""
    checks = doctor_checks.examine(config.load())
    for check in checks:
        click.echo(f"{'ok  ' if check.ok else 'FAIL'}  {check.name}: {check.found}")
    if not all(check.ok for check in checks):
        raise SystemExit(1)


@cli.command()
def metrics() -> None:
    """Print the Horus metrics once, in the Prometheus text format (`horus up` serves them)."""
    store = Store(config.load())
    click.echo(generate_latest(registry_for(store)).decode(), nl=False)
