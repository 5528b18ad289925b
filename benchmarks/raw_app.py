"""The raw-Celery side of the benchmark: the same settings, a plain subprocess task."""

from __future__ import annotations

import subprocess

from celery import Celery

app = Celery("raw")
app.config_from_object("celeryconfig")


@app.task(name="raw.run_true")
def run_true() -> int:
    """Run the shell command `true` (as a Horus shell job does) and return its exit code."""
    return subprocess.run("true", shell=True, check=False).returncode
