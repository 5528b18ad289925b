"""The run of one admitted attempt through its runner: its working directory, its
launcher, and, after it, the warm start of the call it made, for the next job of its
runner (:mod:`horus.execution.warm`).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import traceback
from pathlib import Path

from horus.execution import warm
from horus.execution.admission import Admission
from horus.execution.context import WorkerContext
from horus.execution.guard import Guard
from horus.execution.launcher import AttemptLauncher
from horus.execution.output import Output
from horus.job import JobStatus
from horus.proc.groups import SCRATCH_PREFIX
from horus.proc.sandbox import Sandbox
from horus.runner import Outcome, RunContext, WarmStart

log = logging.getLogger(__name__)


def run_admitted(
    ctx: WorkerContext,
    admission: Admission,
    attempt: int,
    secrets: dict[str, str],
    guard: Guard,
    output: Output,
) -> Outcome:
    """Run the admitted ``attempt`` through its runner, in a working directory of its own
    that goes with it; a runner that crashes fails the job with its traceback."""
    job = admission.job
    sandbox = admission.isolation.sandbox
    held = warm.claim(job.runner_id, sandbox)
    if held is not None:  # its directory is the attempt's now
        workdir = held.workdir
    else:
        workdir = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{job.id[:12]}-"))
    launcher = AttemptLauncher(
        job.id,
        attempt,
        ctx.lifecycle,
        guard,
        groups_dir=ctx.settings.groups_dir,
        scratch=workdir,
        tee=output,
        runner_id=job.runner_id,
        isolation=admission.isolation,
        held=held,
    )
    try:
        return admission.runner.run(
            RunContext(
                job=job,
                workdir=workdir,
                deadline=time.monotonic() + job.timeout,
                launcher=launcher,
                params=admission.params,
                config=ctx.configs[job.runner_id],
                output=output,
                secrets=secrets,
                attempt=attempt,
            )
        )
    except Exception:
        return Outcome(
            status=JobStatus.FAILED,
            error=f"runner {job.runner_id!r} crashed:\n{traceback.format_exc()}",
        )
    finally:
        launcher.close()
        output.close()
        shutil.rmtree(workdir, ignore_errors=True)
        if launcher.warm_call is not None:
            _hold_next(ctx, job.runner_id, *launcher.warm_call, sandbox)


def _hold_next(
    ctx: WorkerContext,
    runner_id: str,
    kind: WarmStart,
    argv: tuple[str, ...],
    env: dict[str, str],
    sandbox: Sandbox | None,
) -> None:
    """Start the next process of this attempt's runner, held for its next job."""
    try:
        warm.hold(runner_id, kind, argv, env, sandbox, ctx.settings.groups_dir)
    except OSError as exc:
        log.warning("could not start a warm %s call for the next job: %s", runner_id, exc)
