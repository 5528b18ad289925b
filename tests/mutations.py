"""The mutation check: remove each guard of the job lifecycle in turn and fail unless some
test fails. Run it from the repository as ``python -m tests.mutations`` (``./dev test``
runs it after pytest; CI runs ``./dev test``).

Each row of :data:`MUTATIONS` names a rule, the file that holds its guard, the exact text
of the guard and what it becomes without it, and the tests that must catch it. For each row
the file is rewritten, the tests run in a subprocess, and the file is written back (always:
on a failure, on Ctrl-C, on SIGTERM). A row whose text is not found exactly once fails the
check, so the table cannot rot silently as the code changes.

A mutation counts as caught only when pytest reports failed tests (exit status 1) that are
not a Lua error of the mutated script itself: a mutation must remove a guard, not break the
script.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parent.parent
LUA = "horus/store/lua/"
LIFECYCLE = "tests/lifecycle/"
FENCING = (f"{LIFECYCLE}test_fencing.py",)
START = (f"{LIFECYCLE}test_start.py",)
END = (f"{LIFECYCLE}test_end.py",)
UNHELD = (f"{LIFECYCLE}test_unheld.py",)
RETRY = (f"{LIFECYCLE}test_retry.py",)
RECOVERY = f"{LIFECYCLE}test_recovery.py"
SWEEPER = (RECOVERY, "-k", "sweeper")
GUARD = (RECOVERY, "-k", "guard")
STORE_AWAY = (RECOVERY, "-k", "store_is_away")
REDELIVERY = (f"{RECOVERY}::test_a_redelivered_message_of_a_finished_job_never_runs",)
SANDBOX = "tests/unit/test_sandbox.py"
WARM = "tests/unit/test_warm.py"
WARM_WORKER = "tests/integration/test_warm.py"
#: what Redis says of a Lua script that does not compile or run: a broken mutation
LUA_ERROR = "user_script:"


@dataclass(frozen=True)
class Mutation:
    """One guard removed: ``original`` (found exactly once in ``path``) becomes ``mutated``,
    and running pytest on ``tests`` must then fail."""

    rule: str
    path: str
    original: str
    mutated: str
    tests: tuple[str, ...]


M = Mutation
MUTATIONS: tuple[Mutation, ...] = (
    # -- the fence (lib.lua's owns, and each script that asks it) ----------------------
    M(
        "a stale attempt owns nothing: the attempt number is the fence",
        f"{LUA}lib.lua",
        "== 'running'\n    and redis.call('HGET', K.job, 'attempt') == attempt",
        "== 'running'",
        FENCING,
    ),
    M(
        "an attempt of a job that no longer runs owns nothing",
        f"{LUA}lib.lua",
        "return redis.call('HGET', K.job, 'status') == 'running'\n    and",
        "return",
        FENCING,
    ),
    M(
        "a stale attempt cannot renew its lease",
        f"{LUA}renew.lua",
        "if not owns(K, ARGV[5]) then return 0 end",
        "-- guard removed",
        FENCING,
    ),
    M(
        "a stale attempt cannot note an exit",
        f"{LUA}exited.lua",
        "if not owns(K, ARGV[5]) then return 0 end",
        "-- guard removed",
        FENCING,
    ),
    M(
        "a stale attempt cannot end, hand back or be reclaimed",
        f"{LUA}end.lua",
        "if not owns(K, attempt) then",
        "if false then",
        FENCING,
    ),
    # -- start ---------------------------------------------------------------------------
    M(
        "an attempt starts only from pending",
        f"{LUA}start.lua",
        "if status ~= 'pending' then return {'refused', status} end",
        "-- guard removed",
        START,
    ),
    M(
        "a redelivered message of a finished job never runs",
        f"{LUA}start.lua",
        "if status ~= 'pending' then return {'refused', status} end",
        "-- guard removed",
        REDELIVERY,
    ),
    M(
        "a retry does not start before it is due",
        f"{LUA}start.lua",
        "if due > tonumber(ARGV[8]) + 1 then",
        "if false then",
        START,
    ),
    M(
        "an early start keeps the retry",
        f"{LUA}start.lua",
        "  redis.call('ZADD', K.retries, due, id)  -- whatever happens, the retry stays\n",
        "",
        START,
    ),
    M(
        "a second of clock skew does not make a retry early",
        f"{LUA}start.lua",
        "if due > tonumber(ARGV[8]) + 1 then",
        "if due > tonumber(ARGV[8]) then",
        START,
    ),
    M(
        "an expired signature stops a first attempt",
        f"{LUA}start.lua",
        "if ARGV[9] == '1' and",
        "if false and",
        START,
    ),
    M(
        "an expired signature stops a first attempt only",
        f"{LUA}start.lua",
        " and tonumber(redis.call('HGET', K.job, 'attempt') or '0') == 0 then",
        " then",
        START,
    ),
    M(
        "each start is a new attempt number",
        f"{LUA}start.lua",
        "local attempt = redis.call('HINCRBY', K.job, 'attempt', 1)",
        "local attempt = tonumber(redis.call('HGET', K.job, 'attempt')) + 1",
        START,
    ),
    M(
        "each start is one more try",
        f"{LUA}start.lua",
        "local tries = redis.call('HINCRBY', K.job, 'tries', 1)",
        "local tries = tonumber(redis.call('HGET', K.job, 'tries') or '0')",
        START,
    ),
    # -- end -----------------------------------------------------------------------------
    M(
        "a reclaim waits for the lease to expire",
        f"{LUA}end.lua",
        "if lease > tonumber(ARGV[12]) then",
        "if false then",
        END,
    ),
    M(
        "a reclaim applies only on the exit note it was decided on",
        f"{LUA}end.lua",
        "  if (redis.call('HGET', K.job, 'exited') or '') ~= ARGV[13] then return "
        "{'changed', status} end\n",
        "",
        END,
    ),
    M(
        "a hand-back or a lost attempt gives its try back",
        f"{LUA}end.lua",
        "if ARGV[10] ~= '0' then redis.call('HINCRBY', K.job, 'tries', ARGV[10]) end",
        "",
        END,
    ),
    M(
        "a lost attempt is counted as lost",
        f"{LUA}end.lua",
        "if ARGV[11] ~= '0' then redis.call('HINCRBY', K.job, 'lost', ARGV[11]) end",
        "",
        END,
    ),
    M(
        "an ended job leaves its old status index",
        f"{LUA}lib.lua",
        "  redis.call('ZREM', K.status .. from, id)\n",
        "",
        END,
    ),
    M(
        "an ended job's record expires after the retention period",
        f"{LUA}lib.lua",
        "  redis.call('EXPIRE', K.job, retention)\n  redis.call('ZREM', K.retries, id)",
        "  redis.call('ZREM', K.retries, id)",
        END,
    ),
    M(
        "an ended job leaves the retries",
        f"{LUA}lib.lua",
        "  redis.call('ZREM', K.retries, id)\n",
        "",
        END,
    ),
    M(
        "an ended job is not published again",
        f"{LUA}lib.lua",
        "  redis.call('ZREM', K.queued, id)\n",
        "",
        END,
    ),
    M(
        "an ended job wakes its waiters",
        f"{LUA}lib.lua",
        "  redis.call('PUBLISH', K.done, to)\n",
        "",
        END,
    ),
    M(
        "an ended attempt holds no lease",
        f"{LUA}lib.lua",
        "  redis.call('ZREM', K.leases, id)\n  local worker",
        "  local worker",
        END,
    ),
    M(
        "an ended attempt leaves its worker's held set",
        f"{LUA}lib.lua",
        "if worker then redis.call('SREM', K.held .. worker, id) end",
        "",
        END,
    ),
    M(
        "a job to run again is listed for its retry",
        f"{LUA}lib.lua",
        "  redis.call('ZADD', K.retries, due, id)\n",
        "",
        END,
    ),
    # -- a job no attempt holds ----------------------------------------------------------
    M(
        "create never writes over a taken id",
        f"{LUA}create.lua",
        "if redis.call('EXISTS', K.job) == 1 then return 0 end",
        "-- guard removed",
        UNHELD,
    ),
    M(
        "discard removes only a pending record",
        f"{LUA}discard.lua",
        "if redis.call('HGET', K.job, 'status') ~= 'pending' then return 0 end",
        "-- guard removed",
        UNHELD,
    ),
    M(
        "discard removes only a record no worker started",
        f"{LUA}discard.lua",
        "if (redis.call('HGET', K.job, 'attempt') or '0') ~= '0' then return 0 end",
        "-- guard removed",
        UNHELD,
    ),
    M(
        "close ends only a pending job",
        f"{LUA}close.lua",
        "if status == 'pending' then",
        "if true then",
        UNHELD,
    ),
    M(
        "close attaches a cancel request only to a running job",
        f"{LUA}close.lua",
        "if status == 'running' and ARGV[7] ~= '' then",
        "if ARGV[7] ~= '' then",
        UNHELD,
    ),
    M(
        "a published message keeps a retry that is not due yet",
        f"{LUA}published.lua",
        "if due and tonumber(due) <= tonumber(ARGV[5]) then",
        "if due then",
        UNHELD,
    ),
    # -- the retry decision --------------------------------------------------------------
    M(
        "no retry after an honoured cancel",
        "horus/store/retry.py",
        " and not cancelled and tries < max_attempts:",
        " and tries < max_attempts:",
        RETRY,
    ),
    M(
        "no retry after the last try",
        "horus/store/retry.py",
        " and not cancelled and tries < max_attempts:",
        " and not cancelled:",
        RETRY,
    ),
    M(
        "max_attempts counts every try (no try beyond it)",
        "horus/store/retry.py",
        "tries < max_attempts:",
        "tries <= max_attempts:",
        RETRY,
    ),
    M(
        "completed and cancelled are final",
        "horus/store/retry.py",
        "if status in (JobStatus.FAILED, JobStatus.TIMEOUT) and",
        "if status is not JobStatus.PENDING and",
        RETRY,
    ),
    M(
        "a retry waits base, then twice as long each time (seed 003)",
        "horus/store/retry.py",
        "base * 2 ** max(0, tries - 1)",
        "base * 2**tries",
        RETRY,
    ),
    M(
        "a retry waits at most the cap",
        "horus/store/retry.py",
        "float(min(cap, base * 2 ** max(0, tries - 1)))",
        "float(base * 2 ** max(0, tries - 1))",
        RETRY,
    ),
    M(
        "a retry is due after its delay",
        "horus/store/retry.py",
        "due=now + delay(tries, base, cap),",
        "due=now,",
        RETRY,
    ),
    M(
        "a job lost with its worker stops at the lost limit",
        "horus/store/retry.py",
        "if lost + 1 < lost_limit:",
        "if True:",
        RETRY,
    ),
    M(
        "the lost limit counts every loss (none beyond it)",
        "horus/store/retry.py",
        "if lost + 1 < lost_limit:",
        "if lost < lost_limit:",
        RETRY,
    ),
    M(
        "a job that exited 0 and then lost its worker completed",
        "horus/store/retry.py",
        "if status is JobStatus.COMPLETED:",
        "if False:",
        RETRY,
    ),
    M(
        "a hand-back does not count as a try",
        "horus/store/retry.py",
        'due=due, tries=-1, reason="its worker stopped"',
        'due=due, tries=0, reason="its worker stopped"',
        RETRY,
    ),
    M(
        "a lost attempt does not count as a try",
        "horus/store/retry.py",
        "due=now, tries=-1, lost=1,",
        "due=now, tries=0, lost=1,",
        RETRY,
    ),
    M(
        "a lost attempt counts as lost",
        "horus/store/retry.py",
        "due=now, tries=-1, lost=1,",
        "due=now, tries=-1, lost=0,",
        RETRY,
    ),
    # -- the sweeper and the guard -------------------------------------------------------
    M(
        "no lease is taken back while an orphan's exit is unrecorded",
        "horus/services/sweeper.py",
        " and not reaped.waiting",
        "",
        SWEEPER,
    ),
    M(
        "an exit stays on disk until the record has it",
        "horus/execution/launcher.py",
        "ran = launch.finish(forget=accounted)",
        "ran = launch.finish()",
        STORE_AWAY,
    ),
    M(
        "an exit stays on disk when its worker process is stopped before it is noted",
        "horus/execution/launcher.py",
        "        accounted = False\n",
        "        accounted = True\n",
        STORE_AWAY,
    ),
    M(
        "a lost job that had exited 0 completes, never runs again",
        "horus/services/sweeper.py",
        'exited_0 = record.exited == f"{record.attempt}:0"',
        "exited_0 = False",
        SWEEPER,
    ),
    M(
        "the guard stops an attempt once another attempt runs the job",
        "horus/execution/guard.py",
        'if status != "running" or attempt != self.attempt:',
        'if status != "running":',
        GUARD,
    ),
    M(
        "the guard stops an attempt whose job no longer runs",
        "horus/execution/guard.py",
        'if status != "running" or attempt != self.attempt:',
        "if attempt != self.attempt:",
        GUARD,
    ),
    M(
        "a sandboxed job that exited 0 as its worker process died is written as exited 0",
        "horus/proc/keeper.py",
        '[ -z "$horus_j" ] || { kill -9 "$horus_j" 2>/dev/null; return; }',
        '[ -z "$horus_j" ] || { kill -9 "$horus_p" 2>/dev/null; return; }',
        ("tests/unit/test_keeper.py", "-k", "exited_0"),
    ),
    # -- isolation and the trust it keeps ----------------------------------------------
    M(
        "a job that needs a sandbox this machine cannot make is refused (fail closed)",
        "horus/execution/isolation.py",
        "    why = sandbox.unavailable(settings.bwrap)\n    if why:\n        raise NoSandbox(",
        "    why = sandbox.unavailable(settings.bwrap)\n    if False:\n        raise NoSandbox(",
        (f"{SANDBOX}::test_a_job_that_needs_a_sandbox_this_machine_cannot_make_is_refused",),
    ),
    M(
        "HORUS_HOME, the keys and the policy are covered inside a readable path",
        "horus/proc/sandbox.py",
        "                args += _cover(path)",
        "                pass",
        (f"{SANDBOX}::test_a_hidden_path_under_a_readable_one_is_covered",),
    ),
    M(
        "a root worker's job drops to a user of its own with no capabilities",
        "horus/proc/sandbox.py",
        '"--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]',
        '"--"]',
        (f"{SANDBOX}::test_a_root_worker_runs_the_job_as_a_user_of_its_own_without_capabilities",),
    ),
    M(
        "a job may not set the HORUS_* names Horus sets",
        "horus/job.py",
        "if name.upper().startswith(RESERVED_ENV_PREFIX):",
        "if False:",
        (f"{SANDBOX}::test_a_job_may_not_set_horus_names",),
    ),
    M(
        "a sealed secret opens only for the job and name it was sealed for",
        "horus/trust/sealing.py",
        'if inside.get("job") != job_id or inside.get("name") != name:',
        "if False:",
        ("tests/unit/test_sealing.py",),
    ),
    M(
        "the programs that start a job are the worker's, never found on a job's PATH",
        "horus/proc/tools.py",
        "    return shutil.which(name) or name",
        "    return name",
        ("tests/security/test_processes.py", "-k", "sets_path"),
    ),
    # -- submitting (horus.client) ------------------------------------------------------
    M(
        "a batch's record that could not be withdrawn is reported submitted",
        "horus/client.py",
        "            if kept or not self._withdraw(job):",
        "            if False:",
        ("tests/integration/test_bulk.py", "-k", "sweeper"),
    ),
    M(
        "a job's record that could not be withdrawn is reported submitted",
        "horus/client.py",
        "            if self._withdraw(created):\n                raise",
        "            raise",
        ("tests/integration/test_bulk.py", "-k", "sweeper"),
    ),
    M(
        "the client verifies every signature it did not make just now",
        "horus/client.py",
        "        given = set(job.signatures)",
        "        given: set[Signature] = set()",
        ("tests/integration/test_trust.py", "-k", "tampered_after"),
    ),
    M(
        "a batch declares its queues before its messages",
        "horus/messaging/publish.py",
        "            declare(app, producer, jobs)\n",
        "",
        ("tests/integration/test_external_brokers.py", "-k", "no_one_declared"),
    ),
    # -- the worker's event-loop timer (horus.execution.timers) --------------------------
    M(
        "the worker drops the cancelled time-limit timers of ended jobs",
        "horus/execution/timers.py",
        "    hub.call_repeatedly(COMPACT_EVERY, drop_cancelled, timer)",
        "    pass",
        ("tests/unit/test_timers.py", "-k", "started_worker"),
    ),
    # -- warm starts (horus.execution.warm) --------------------------------------------
    M(
        "a held call is claimed only by a job of its runner and sandbox",
        "horus/execution/warm.py",
        "if held is not None and held.sandbox != sandbox:",
        "if False:",
        (f"{WARM}::test_a_job_claims_the_held_call_of_its_runner_and_sandbox_only",),
    ),
    M(
        "a job that sets a variable an interpreter reads as it starts starts cold",
        "horus/execution/warm.py",
        "tuple(argv) == self.argv and startup_of(env) == startup_of(dict(self.env))",
        "tuple(argv) == self.argv",
        (WARM, "-k", "does_not_fit"),
    ),
    M(
        "a held process starts with none of its maker's variables but the startup ones",
        "horus/execution/warm.py",
        "            env=own,",
        "            env={**env, **own},",
        (
            f"{WARM}::test_a_held_process_is_started_with_no_variable_of_its_maker_but_the_startup_ones",
        ),
    ),
    M(
        "an exec start clears the held shell's variables before it sets the job's",
        "horus/execution/warm.py",
        'lines = ["unset " + " ".join(name for name, _ in self.env)]',
        "lines = []",
        (f"{WARM}::test_an_exec_start_runs_the_jobs_command_as_a_cold_start_would",),
    ),
    M(
        "a warm-started job's environment is its own, from its request",
        "horus/child.py",
        'os.environ.update(request["env"])',
        "os.environ.update({})",
        (
            f"{WARM_WORKER}::test_the_next_python_call_starts_before_its_job_comes_and_is_the_jobs_alone",
        ),
    ),
)


def problems(mutations: tuple[Mutation, ...]) -> list[str]:
    """What is wrong with the table: a text not found exactly once, a row that changes
    nothing, or a mutated Python file that does not compile."""
    found = []
    for m in mutations:
        text = (REPO / m.path).read_text()
        count = text.count(m.original)
        if count != 1:
            found.append(f"{m.rule}: {m.path} holds its guard text {count} times, not once")
        elif m.original == m.mutated:
            found.append(f"{m.rule}: the mutation changes nothing")
        elif m.path.endswith(".py"):
            try:
                compile(text.replace(m.original, m.mutated), m.path, "exec")
            except SyntaxError as exc:
                found.append(f"{m.rule}: the mutated {m.path} does not compile: {exc}")
    return found


def pytest(tests: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # so the file being mutated is written back


def run(mutations: tuple[Mutation, ...]) -> int:
    """Apply each mutation, run its tests, restore the file; 0 when every one was caught."""
    wrong = problems(mutations)
    if wrong:
        for line in wrong:
            print(f"table: {line}")
        print("the mutation table no longer matches the code: update tests/mutations.py")
        return 2
    files = sorted(
        {t.split("::")[0] for m in mutations for t in m.tests if t.split("::")[0].endswith(".py")}
    )
    baseline = pytest(tuple(files))
    if baseline.returncode != 0:
        print(baseline.stdout[-4000:], baseline.stderr[-2000:])
        print("the tests fail without any mutation: fix them first")
        return 2
    caught, failed = 0, []
    began = time.monotonic()
    for m in mutations:
        path = REPO / m.path
        original = path.read_text()
        clock = time.monotonic()
        try:
            path.write_text(original.replace(m.original, m.mutated))
            ran = pytest(m.tests)
        finally:
            path.write_text(original)
        seconds = time.monotonic() - clock
        if ran.returncode == 1 and LUA_ERROR not in ran.stdout:
            caught += 1
            verdict = "caught  "
        else:
            failed.append((m, ran))
            verdict = "SURVIVED" if ran.returncode == 0 else "BROKEN  "
        print(f"{verdict} {m.rule} ({m.path}, {seconds:.1f} s)", flush=True)
    for m, ran in failed:
        print(f"\n--- {m.rule}: pytest exited {ran.returncode} on {' '.join(m.tests)}")
        print(ran.stdout[-3000:])
    total = len(mutations)
    spent = time.monotonic() - began
    if not failed:
        print(f"{total} of {total} guards removed, each caught ({spent:.0f} s)")
        return 0
    print(f"{caught} of {total} guards removed were caught; {len(failed)} not (see above)")
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutations", description=__doc__)
    parser.add_argument("-k", default="", help="only the rules whose name holds this text")
    parser.add_argument("--list", action="store_true", help="list the rules and exit")
    options = parser.parse_args()
    chosen = tuple(m for m in MUTATIONS if options.k in m.rule)
    if options.list:
        for m in chosen:
            print(f"{m.rule} ({m.path})")
        return 0
    signal.signal(signal.SIGTERM, _terminated)
    try:
        return run(chosen)
    except KeyboardInterrupt:
        print("interrupted; every mutated file was written back")
        return 130


if __name__ == "__main__":
    sys.exit(main())
