"""Processes: launching a job's process group under its keeper (:mod:`~horus.proc.launch`,
:mod:`~horus.proc.keeper`), watching its pipes (:mod:`~horus.proc.watch`), and the markers
and reaping of job groups whose worker process died (:mod:`~horus.proc.groups`). Nothing here
knows about jobs, the store or trust."""
