"""The policy: circles, grants, hijacking env names, and the file workers reload."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from horus.errors import ConfigError, NotAllowed
from horus.job import MAX_TIMEOUT, Job, parse_job
from horus.trust.keys import public_text
from horus.trust.policy import Grant, Policy, PolicyFile, hijacks, parse, starter
from horus.trust.signing import sign, verify

KEY_A, KEY_B, KEY_C, KEY_D = (SigningKey(bytes([n]) * 32) for n in (11, 12, 13, 14))
A, B, C, D = (public_text(k) for k in (KEY_A, KEY_B, KEY_C, KEY_D))
WORKER = public_text(SigningKey(bytes([15]) * 32))
ORIGIN = "/etc/horus/policy.toml"

HIJACKING = ["LD_PRELOAD", "LD_LIBRARY_PATH", "BASH_ENV", "PYTHONPATH", "PATH", "NODE_OPTIONS"]


def policy(text: str) -> Policy:
    return parse(text, ORIGIN)


def job(**fields: Any) -> Job:
    return parse_job({"runner_id": "shell", "payload": "true", **fields})


def refusal(pol: Policy, the_job: Job, signers: tuple[str, ...]) -> str:
    with pytest.raises(NotAllowed) as info:
        pol.allows(the_job, signers)
    message = str(info.value)
    assert "\n" not in message
    return message


def config_error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        policy(text)
    message = str(info.value)
    assert message.startswith(f"policy {ORIGIN} is ")
    assert message.endswith("; fix it")
    assert "\n" not in message
    return message


# -- the starter policy -------------------------------------------------------------------

STARTER = policy(starter(A, WORKER))


def test_the_starter_policy_names_the_keys_it_was_made_with() -> None:
    assert STARTER.secrets_key == WORKER
    assert STARTER.members(STARTER.cancellers) == {A}
    assert STARTER.circles == {"local": (A,)}


@pytest.mark.parametrize("runner", ["shell", "python", "someone-elses-runner"])
@pytest.mark.parametrize("context", [None, "prod", "sandbox"])
def test_the_starter_policy_lets_the_local_key_use_any_runner_anywhere(
    runner: str, context: str | None
) -> None:
    grant = STARTER.allows(job(runner_id=runner, context_id=context), (A,))
    assert grant is STARTER.grants[0]


def test_the_starter_policy_allows_the_longest_timeout_and_ordinary_env() -> None:
    STARTER.allows(job(timeout=MAX_TIMEOUT, env_vars={"APP_MODE": "x"}), (A,))


def test_the_starter_policy_refuses_other_keys_and_unsigned_jobs() -> None:
    assert "no grant lets key" in refusal(STARTER, job(), (B,))
    assert "sign it" in refusal(STARTER, job(), ())


def test_the_starter_policy_still_refuses_hijacking_env_names() -> None:
    assert "can hijack" in refusal(STARTER, job(env_vars={"LD_PRELOAD": "/x.so"}), (A,))


# -- who ----------------------------------------------------------------------------------

WHO = policy(f"""
[circles]
ops = ["{A}", "{B}"]

[[grants]]
who = ["ops"]
runners = ["shell"]

[[grants]]
who = ["{C}"]
runners = ["python"]
""")


def test_a_grant_to_a_circle_covers_each_member() -> None:
    assert WHO.allows(job(), (A,)) is WHO.grants[0]
    assert WHO.allows(job(), (B,)) is WHO.grants[0]


def test_a_grant_to_a_key_covers_that_key() -> None:
    assert WHO.allows(job(runner_id="python"), (C,)) is WHO.grants[1]


def test_a_grant_covers_only_its_runners_and_its_keys() -> None:
    message = refusal(WHO, job(), (C,))
    assert "no grant lets key" in message
    assert "runner 'shell'" in message
    assert "runner 'python'" in refusal(WHO, job(runner_id="python"), (A,))
    assert "no grant lets key" in refusal(WHO, job(), (D,))


def test_one_signer_with_a_grant_is_enough_among_strangers() -> None:
    assert WHO.allows(job(), (D, A)) is WHO.grants[0]


def test_members_expands_circles_and_keeps_keys() -> None:
    assert WHO.members(("ops", C)) == {A, B, C}
    assert WHO.members(()) == set()


def test_the_refusal_names_the_closest_grant() -> None:
    pol = policy(f"""
[[grants]]
who = ["{A}"]
runners = ["python"]

[[grants]]
who = ["{A}"]
runners = ["shell"]
max_timeout = 10
""")
    assert "timeout 60 s is over the 10 s" in refusal(pol, job(), (A,))


def test_a_policy_without_grants_refuses_everything() -> None:
    empty = policy("")
    assert "has no grants" in refusal(empty, job(), (A,))
    assert "sign it" in refusal(empty, job(), ())


# -- contexts -----------------------------------------------------------------------------

CONTEXTS = policy(f"""
[[grants]]
who = ["{A}"]
runners = ["*"]
contexts = ["*"]

[[grants]]
who = ["{B}"]
runners = ["*"]
contexts = ["prod", "staging"]
""")


@pytest.mark.parametrize("context", [None, "prod", "dev"])
def test_a_star_context_covers_every_context_and_no_context(context: str | None) -> None:
    assert CONTEXTS.allows(job(context_id=context), (A,)) is CONTEXTS.grants[0]


@pytest.mark.parametrize("context", ["prod", "staging"])
def test_a_named_context_list_covers_its_contexts(context: str) -> None:
    assert CONTEXTS.allows(job(context_id=context), (B,)) is CONTEXTS.grants[1]


def test_a_named_context_list_does_not_cover_other_contexts_or_none() -> None:
    assert "in dev" in refusal(CONTEXTS, job(context_id="dev"), (B,))
    assert "in no context" in refusal(CONTEXTS, job(), (B,))


def test_the_default_contexts_are_all() -> None:
    pol = policy(f'[[grants]]\nwho = ["{A}"]\nrunners = ["shell"]\n')
    assert pol.grants[0].contexts == ("*",)
    pol.allows(job(), (A,))
    pol.allows(job(context_id="anything"), (A,))


# -- limits: timeout and env --------------------------------------------------------------


def test_max_timeout_caps_the_job_timeout() -> None:
    pol = policy(f'[[grants]]\nwho = ["{A}"]\nrunners = ["shell"]\nmax_timeout = 60\n')
    pol.allows(job(timeout=60), (A,))
    message = refusal(pol, job(timeout=61), (A,))
    assert "timeout 61 s is over the 60 s the grant allows for runner 'shell'" in message


ENV = policy(f"""
[[grants]]
who = ["{A}"]
runners = ["shell"]
env = ["APP_*", "LOG_LEVEL"]
""")


@pytest.mark.parametrize("name", ["APP_MODE", "APP_", "LOG_LEVEL"])
def test_env_names_matching_the_grant_are_allowed(name: str) -> None:
    ENV.allows(job(env_vars={name: "x"}), (A,))
    ENV.allows(job(secrets={name: "c2VhbGVk"}), (A,))


@pytest.mark.parametrize("name", ["OTHER", "app_mode", "XAPP_MODE", "LOG_LEVEL2"])
def test_env_names_not_matching_the_grant_are_refused(name: str) -> None:
    message = refusal(ENV, job(env_vars={name: "x"}), (A,))
    assert f"the grant does not let the job set env var {name}; add it to `env`" in message


def test_secret_names_must_be_allowed_like_env_names() -> None:
    message = refusal(ENV, job(secrets={"DB_PASSWORD": "c2VhbGVk"}), (A,))
    assert "env var DB_PASSWORD" in message


def test_a_grant_with_an_empty_env_list_allows_no_env() -> None:
    pol = policy(f'[[grants]]\nwho = ["{A}"]\nrunners = ["shell"]\nenv = []\n')
    pol.allows(job(), (A,))
    assert "env var X" in refusal(pol, job(env_vars={"X": "1"}), (A,))


@pytest.mark.parametrize("name", HIJACKING)
def test_hijacking_names_are_refused_even_when_every_name_is_allowed(name: str) -> None:
    pol = policy(f'[[grants]]\nwho = ["{A}"]\nrunners = ["shell"]\nenv = ["*"]\n')
    for fields in ({"env_vars": {name: "x"}}, {"secrets": {name: "c2VhbGVk"}}):
        message = refusal(pol, job(**fields), (A,))
        assert f"env var {name} can hijack" in message
        assert "by exact name" in message


@pytest.mark.parametrize("name", HIJACKING)
def test_hijacking_names_are_allowed_when_listed_by_exact_name(name: str) -> None:
    pol = policy(f'[[grants]]\nwho = ["{A}"]\nrunners = ["shell"]\nenv = ["*", "{name}"]\n')
    pol.allows(job(env_vars={name: "x"}), (A,))
    other = next(n for n in HIJACKING if n != name)
    assert "can hijack" in refusal(pol, job(env_vars={name: "x", other: "y"}), (A,))


def test_a_glob_does_not_allow_a_hijacking_name() -> None:
    pol = policy(f'[[grants]]\nwho = ["{A}"]\nrunners = ["shell"]\nenv = ["LD_*", "PYTHON*"]\n')
    assert "can hijack" in refusal(pol, job(env_vars={"LD_PRELOAD": "x"}), (A,))
    assert "can hijack" in refusal(pol, job(env_vars={"PYTHONPATH": "x"}), (A,))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        *((n, True) for n in HIJACKING),
        ("DYLD_INSERT_LIBRARIES", True),
        ("PYTHONSTARTUP", True),
        ("PERL5OPT", True),
        ("GIT_SSH_COMMAND", True),
        ("GIT_CONFIG_GLOBAL", True),
        ("MALLOC_CHECK_", True),
        ("APP_PATH", False),
        ("PATHS", False),
        ("MY_LD_PRELOAD", False),
        ("path", False),
        ("HOME_DIR", False),
    ],
)
def test_hijacks_knows_the_dangerous_names(name: str, expected: bool) -> None:
    assert hijacks(name) is expected


# -- how many signatures ------------------------------------------------------------------

TWO = policy(f"""
[circles]
ops = ["{A}", "{B}", "{C}"]

[[grants]]
who = ["ops"]
runners = ["shell"]
signatures = 2
""")


@pytest.mark.parametrize("signers", [(A, B), (B, C), (A, B, C), (D, A, C)])
def test_two_signatures_from_the_circle_are_enough(signers: tuple[str, ...]) -> None:
    assert TWO.allows(job(), signers) is TWO.grants[0]


@pytest.mark.parametrize("signers", [(A,), (A, D), (D,)])
def test_fewer_than_two_circle_signatures_are_refused(signers: tuple[str, ...]) -> None:
    message = refusal(TWO, job(), signers)
    if A in signers:
        assert "needs 2 signatures from ops, the job has 1; collect more" in message
    else:
        assert "no grant lets key" in message


def test_one_key_signing_twice_counts_once() -> None:
    signed = sign(job(), KEY_A)
    twice = signed.model_copy(update={"signatures": signed.signatures * 2})
    signers = verify(twice, twice.created_at, 7 * 24 * 3600)
    assert "the job has 1" in refusal(TWO, twice, signers)
    both = sign(sign(job(), KEY_A), KEY_B)
    TWO.allows(both, verify(both, both.created_at, 7 * 24 * 3600))


# -- unsigned jobs ------------------------------------------------------------------------


def test_an_unsigned_job_is_refused_with_a_message_saying_to_sign_it() -> None:
    pol = policy(f'[[grants]]\nwho = ["{A}"]\nrunners = ["shell"]\n')
    message = refusal(pol, job(), ())
    assert "the job is unsigned" in message
    assert "no grant allows unsigned jobs for runner 'shell'" in message
    assert "sign it (--key PATH or HORUS_KEY)" in message


UNSIGNED = policy(f"""
[[grants]]
who = ["{A}"]
runners = ["*"]

[[grants]]
unsigned = true
runners = ["shell"]
contexts = ["sandbox"]
max_timeout = 60
""")


def test_a_grant_with_unsigned_true_admits_unsigned_jobs_for_its_runner() -> None:
    assert UNSIGNED.allows(job(context_id="sandbox"), ()) is UNSIGNED.grants[1]


def test_unsigned_true_admits_only_what_the_grant_covers() -> None:
    assert "sign it" in refusal(UNSIGNED, job(runner_id="python", context_id="sandbox"), ())
    assert "sign it" in refusal(UNSIGNED, job(context_id="prod"), ())
    assert "over the 60 s" in refusal(UNSIGNED, job(context_id="sandbox", timeout=61), ())


def test_unsigned_true_still_lets_signed_jobs_through_the_same_grant() -> None:
    assert UNSIGNED.allows(job(context_id="sandbox"), (D,)) is UNSIGNED.grants[1]


# -- invalid policies ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        pytest.param("grants = [", "is not valid TOML", id="bad TOML"),
        pytest.param("x = ", "is not valid TOML", id="missing value"),
        pytest.param("colour = 1", "colour: unknown field", id="unknown top-level field"),
        pytest.param(
            f'[[grants]]\nwho = ["{A}"]\nrunners = ["shell"]\nbogus = 1',
            "grants.0.bogus: unknown field",
            id="unknown grant field",
        ),
        pytest.param(
            '[[grants]]\nwho = ["nobody"]\nrunners = ["shell"]',
            "'nobody' is neither a public key nor a circle",
            id="unknown circle in who",
        ),
        pytest.param(
            'cancellers = ["nobody"]',
            "'nobody' is neither a public key nor a circle",
            id="unknown canceller",
        ),
        pytest.param(
            '[circles]\nops = ["ed25519:AAAA"]', "'ed25519:AAAA' is 3 bytes", id="short key"
        ),
        pytest.param('[circles]\nops = ["bob"]', "does not start with", id="circle member"),
        pytest.param(
            f'[[grants]]\nwho = ["ed25519:{"A" * 10}"]\nrunners = ["shell"]',
            "public key",
            id="bad key in who",
        ),
        pytest.param('secrets_key = "ssh-rsa AAAA"', "does not start with", id="secrets_key"),
        pytest.param(
            "[[grants]]\nrunners = ['shell']", "a grant needs `who`", id="grant without who"
        ),
        pytest.param(
            f'[[grants]]\nwho = ["{A}"]\nrunners = []', "grants.0.runners", id="no runners"
        ),
        pytest.param(
            f'[[grants]]\nwho = ["{A}"]\nrunners = ["*"]\nsignatures = 0',
            "grants.0.signatures",
            id="zero signatures",
        ),
        pytest.param(
            f'[[grants]]\nwho = ["{A}"]\nrunners = ["*"]\nmax_timeout = {MAX_TIMEOUT + 1}',
            "grants.0.max_timeout",
            id="max_timeout too long",
        ),
    ],
)
def test_an_invalid_policy_is_a_one_line_config_error_naming_the_file(
    text: str, complaint: str
) -> None:
    assert complaint in config_error(text)


def test_an_unknown_policy_field_does_not_point_at_the_job_schema() -> None:
    assert "horus schema job" not in config_error("colour = 1")


def test_a_grant_has_documented_defaults() -> None:
    grant = Grant(who=(A,), runners=("shell",))
    assert grant.contexts == ("*",)
    assert grant.max_timeout == MAX_TIMEOUT
    assert grant.env == ("*",)
    assert grant.signatures == 1
    assert grant.unsigned is False


# -- the policy file ----------------------------------------------------------------------


def grant_text(runner: str) -> str:
    return f'[[grants]]\nwho = ["{A}"]\nrunners = ["{runner}"]\n'


def rewrite(path: Path, text: str) -> None:
    """Write ``text`` in place; its size differs from the old file's, so the change shows."""
    assert not path.exists() or path.stat().st_size != len(text.encode())
    path.write_text(text, encoding="utf-8")


def test_the_policy_file_is_read_again_after_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    rewrite(path, grant_text("shell"))
    pf = PolicyFile(path)
    pf.current().allows(job(), (A,))
    rewrite(path, grant_text("python") + grant_text("other"))
    now = pf.current()
    assert [g.runners for g in now.grants] == [("python",), ("other",)]
    assert "runner 'shell'" in refusal(now, job(), (A,))


def test_a_policy_replaced_by_a_file_of_the_same_size_and_mtime_is_read_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(grant_text("shell"), encoding="utf-8")
    pf = PolicyFile(path)
    assert pf.current().grants[0].runners == ("shell",)
    old = path.stat()
    tmp = tmp_path / "policy.toml.new"
    tmp.write_text(grant_text("other"), encoding="utf-8")
    # same size and, as `rsync -t` or `cp -p` leave it, the same mtime: only the file differs
    os.utime(tmp, ns=(old.st_atime_ns, old.st_mtime_ns))
    assert tmp.stat().st_size == old.st_size
    os.replace(tmp, path)  # what editors and `horus init` do
    assert pf.current().grants[0].runners == ("other",)


def test_a_missing_policy_file_is_a_config_error_saying_to_run_init(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    pf = PolicyFile(path)
    assert not pf.exists()
    with pytest.raises(ConfigError) as info:
        pf.current()
    message = str(info.value)
    assert str(path) in message
    assert "`horus init`" in message
    assert "\n" not in message


def test_a_policy_file_removed_after_use_fails_closed(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    rewrite(path, grant_text("shell"))
    pf = PolicyFile(path)
    pf.current()
    path.unlink()
    with pytest.raises(ConfigError, match="horus init"):
        pf.current()


def test_a_broken_rewrite_fails_closed_and_fixing_it_recovers(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    rewrite(path, grant_text("shell"))
    pf = PolicyFile(path)
    pf.current()
    rewrite(path, grant_text("shell") + "broken = [")
    for _ in range(2):  # the error is kept, not the last good policy
        with pytest.raises(ConfigError, match=f"policy {path} is not valid TOML"):
            pf.current()
    rewrite(path, grant_text("python"))
    assert pf.current().grants[0].runners == ("python",)


def test_a_policy_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_bytes(b"# \xff\xfe\n")
    with pytest.raises(ConfigError, match=f"cannot read policy {path}"):
        PolicyFile(path).current()
