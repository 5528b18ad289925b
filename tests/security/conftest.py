"""The attacker of the security suite: a key granted only the shell runner, in one context,
for at most 30 s, whose jobs try to reach past the job they were given.

Each test leaves a canary (a file under the test's ``tmp_path``, which the grant makes
writable) only if its attack worked, and asserts it is absent; each also checks that the
job ran at all, so that an attack that never started cannot pass for one that failed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from nacl.signing import SigningKey

from horus import config
from horus.client import Client
from horus.job import Job, JobResult, parse_job
from horus.services.embedded import EmbeddedRedis
from horus.trust import keys
from tests.harness import JOB_FILES
from tests.integration import test_hostile_input

#: a worker of its own on the echo test runner's queue (a message that kills it kills no
#: worker other tests rely on)
own_worker = test_hostile_input.own_worker

#: the one context the attacker's grant covers
CONTEXT = "limited"
SETTINGS = config.load()


@dataclass
class Attacker:
    """A client signing with the limited key."""

    client: Client
    key: SigningKey

    def job(self, script: str, timeout: int = 30, **fields: object) -> Job:
        """A shell job in the attacker's context."""
        return parse_job(
            {
                "runner_id": "shell",
                "payload": script,
                "context_id": CONTEXT,
                "timeout": timeout,
                **fields,
            }
        )

    def run(self, script: str, timeout: int = 30, **fields: object) -> JobResult:
        """Run a shell job to its end and return its result."""
        job_id = self.client.submit(self.job(script, timeout, **fields))
        return self.client.wait(job_id, timeout=timeout + 30)


#: the attacker's grants, before every other grant of the session's policy: the plain one
#: (its jobs try to reach past their sandbox), one with limits, and one that sandboxes the
#: chaos test runner (the rest of the suite runs it unsandboxed to stop its own workers)
GRANTS = """
[[grants]]
who = ["{key}"]
runners = ["shell"]
contexts = ["{context}"]
max_timeout = 30
writable = ["{files}"]

[[grants]]
who = ["{key}"]
runners = ["shell"]
contexts = ["{limited}"]
max_timeout = 30
writable = ["{files}"]
limits = {{ processes = 32, memory_mb = 256, cpu_seconds = 2, workdir_mb = 8, output_kb = 1 }}

[[grants]]
who = ["local"]
runners = ["chaos"]
contexts = ["{boxed}"]
writable = ["{files}"]

[[grants]]
who = ["{key}"]
runners = ["shell"]
contexts = ["{own_path}"]
max_timeout = 30
writable = ["{files}"]
env = ["PATH"]

"""
#: the context of the grant with limits, and of the sandboxed chaos jobs
LIMITS = "limits"
BOXED = "sandboxed"
#: the context of the grant that lets a job set its own PATH
OWN_PATH = "own-path"


@pytest.fixture(scope="session")
def attacker(embedded_redis: EmbeddedRedis) -> Iterator[Attacker]:
    """The limited key, granted in the policy for the session's security tests."""
    key = keys.generate(SETTINGS.home / "attacker" / "limited.key", force=True)
    policy = SETTINGS.policy_path
    original = policy.read_text()
    grants = GRANTS.format(
        key=keys.public_text(key),
        context=CONTEXT,
        limited=LIMITS,
        boxed=BOXED,
        own_path=OWN_PATH,
        files=JOB_FILES,
    )
    start = original.index("\n[[grants]]") + 1
    tmp = policy.with_name(".policy.security.tmp")
    tmp.write_text(original[:start] + grants + original[start:])
    os.replace(tmp, policy)
    try:
        yield Attacker(Client(keys=[key]), key)
    finally:
        tmp.write_text(original)
        os.replace(tmp, policy)
