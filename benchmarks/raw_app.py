"""The raw-Celery side of the benchmark: the same settings, a plain subprocess task, its
results stored in Celery's result backend on the same Redis."""

from __future__ import annotations

import subprocess

from celery import Celery

app = Celery("raw")
app.config_from_object("celeryconfig")
# Plain Celery stores its results in its result backend (Horus keeps them in its records).
app.conf.update(result_backend=app.conf.broker_url, task_ignore_result=False)


@app.task(name="raw.run_true")
def run_true() -> int:
    """Run the shell command `true` (as a Horus shell job does) and return its exit code."""
    return subprocess.run("true", shell=True, check=False).returncode
