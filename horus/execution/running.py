"""The run of one admitted attempt through its runner: its working directory (a held
process's, see :mod:`horus.execution.warm`, or a new one) and its launcher, which starts
the next job's process held once this job's runs.
"""

from __future__ import annotations

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
from horus.runner import Outcome, RunContext


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
        hold_next=True,
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
