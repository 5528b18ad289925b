"""The policy: who may run what where, read from a TOML file workers reload as it changes.

::

    secrets_key = "ed25519:..."        # the workers' public key; clients seal secrets to it
    cancellers = ["ops"]               # keys or circles that may cancel any job

    [circles]                          # named sets of public keys (seed 002's circles)
    ops = ["ed25519:...", "ed25519:..."]

    [[grants]]
    who = ["ops"]                      # circles or keys
    runners = ["shell", "python"]      # runner ids, or "*"
    contexts = ["prod"]                # context ids, or "*" (which also covers no context)
    max_timeout = 600                  # optional: the longest timeout it allows
    env = ["APP_*"]                    # env var names (or globs) it may set; default "*"
    signatures = 2                     # distinct signers from `who` it needs; default 1
    unsigned = false                   # true: the grant also admits unsigned jobs
    sandbox = "bwrap"                  # "none": run without a sandbox (not recommended)
    network = false                    # true: the job's sandbox may use the network
    readable = ["/srv/data"]           # host paths the job may read; `writable` to write
    limits = { memory_mb = 512, processes = 64, output_kb = 256, workdir_mb = 100 }

A job runs when one grant covers it. Without a grant with ``unsigned = true`` for its
runner, an unsigned job is refused. Names that can hijack a process pass only when a grant
lists them by exact name: whole families (the loader's ``LD_*``, ``PYTHON*``, every
``GIT_*``, pagers, editors and browsers...), not single names.
"""

from __future__ import annotations

import fnmatch
import os
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from horus.errors import ConfigError, NotAllowed
from horus.job import MAX_TIMEOUT, Job, explain
from horus.trust.keys import PUBLIC_PREFIX, parse_public

#: env var names that change what a process loads or runs; only an exact grant allows them
HIJACK_ENV = (
    "LD_*",
    "DYLD_*",
    "BASH_ENV",
    "ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "PROMPT_COMMAND",
    "IFS",
    "CDPATH",
    "GLOBIGNORE",
    "PATH",
    "PYTHON*",
    "PERL5*",
    "PERLLIB",
    "RUBYOPT",
    "RUBYLIB",
    "NODE_OPTIONS",
    "NODE_PATH",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "CLASSPATH",
    "GCONV_PATH",
    "GLIBC_TUNABLES",
    "MALLOC_*",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "RES_OPTIONS",
    "NLSPATH",
    "LOCPATH",
    "OPENSSL_CONF",
    "OPENSSL_ENGINES",
    # git: every variable that names a command, a hook, a helper or a config
    "GIT_*",
    # programs that other programs start: pagers, editors, browsers, askpass helpers
    "*PAGER",
    "*PAGER_*",
    "*EDITOR",
    "VISUAL",
    "BROWSER",
    "*ASKPASS",
    "SSH_*",
    "TERMINAL",
    "SHELL",
    "MANOPT",
    "LESS*",
    "MANPAGER",
    "MAILCAP*",
    "TAR_OPTIONS",
    "ZDOTDIR",
    "XDG_CONFIG_*",
    "WGETRC",
    "CURL_HOME",
    "SUDO_ASKPASS",
    "LUA_INIT*",
    "LUA_PATH*",
    "LUA_CPATH*",
    "TCLLIBPATH",
    "R_PROFILE*",
)


def hijacks(name: str) -> bool:
    """True for an env var name that can change what a process loads or runs."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in HIJACK_ENV)


class GrantLimits(BaseModel):
    """What a job's processes may use (see :mod:`horus.proc.sandbox`); unset: no limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    memory_mb: int | None = Field(default=None, ge=16)
    cpu_seconds: int | None = Field(default=None, ge=1)
    file_mb: int | None = Field(default=None, ge=1)
    processes: int | None = Field(default=None, ge=1)
    output_kb: int | None = Field(default=None, ge=1, le=1024)
    workdir_mb: int | None = Field(default=None, ge=1)


def _absolute(paths: tuple[str, ...]) -> tuple[str, ...]:
    for path in paths:
        if not path.startswith("/") or ".." in Path(path).parts:
            raise ValueError(f"{path!r} is not an absolute path; write it from / without ..")
    return paths


class Grant(BaseModel):
    """The right for some keys to use some runners in some contexts, within limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    who: tuple[str, ...] = ()
    runners: tuple[str, ...] = Field(min_length=1)
    contexts: tuple[str, ...] = ("*",)
    max_timeout: int = Field(default=MAX_TIMEOUT, ge=1, le=MAX_TIMEOUT)
    env: tuple[str, ...] = ("*",)
    signatures: int = Field(default=1, ge=1, le=16)
    unsigned: bool = False
    #: "bwrap": the job runs in a sandbox (the default); "none": with the worker's powers
    sandbox: Literal["bwrap", "none"] = "bwrap"
    #: the job's sandbox may use the network
    network: bool = False
    #: host paths the job may read, and write
    readable: tuple[str, ...] = ()
    writable: tuple[str, ...] = ()
    limits: GrantLimits = Field(default_factory=GrantLimits)

    _paths = field_validator("readable", "writable")(_absolute)

    @model_validator(mode="after")
    def _someone(self) -> Self:
        if not self.who and not self.unsigned:
            raise ValueError("a grant needs `who` (keys or circles) or `unsigned = true`")
        return self


class Policy(BaseModel):
    """Circles, grants, cancellers and the key secrets are sealed to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    secrets_key: str | None = None
    cancellers: tuple[str, ...] = ()
    circles: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    grants: tuple[Grant, ...] = ()

    @model_validator(mode="after")
    def _keys_and_names(self) -> Self:
        keys = [k for members in self.circles.values() for k in members]
        if self.secrets_key:
            keys.append(self.secrets_key)
        names = [*self.cancellers, *(w for g in self.grants for w in g.who)]
        for name in names:
            if name.startswith(PUBLIC_PREFIX):
                keys.append(name)
            elif name not in self.circles:
                raise ValueError(f"{name!r} is neither a public key nor a circle in [circles]")
        for key in keys:
            parse_public(key)
        return self

    def members(self, names: tuple[str, ...]) -> set[str]:
        """The public keys that a list of keys and circle names stands for."""
        out: set[str] = set()
        for name in names:
            out.update(self.circles.get(name, (name,)))
        return out

    def _mismatch(self, grant: Grant, job: Job, signers: tuple[str, ...]) -> tuple[int, str]:
        """How far ``grant`` got with ``job`` (higher is closer) and why it stops there."""
        context = job.context_id or "no context"
        if "*" not in grant.runners and job.runner_id not in grant.runners:
            return 0, f"no grant lets {_who(signers)} use runner {job.runner_id!r}"
        if "*" not in grant.contexts and job.context_id not in grant.contexts:
            return 1, f"no grant lets {_who(signers)} use runner {job.runner_id!r} in {context}"
        allowed = self.members(grant.who)
        counted = [s for s in signers if s in allowed]
        if not grant.unsigned and len(counted) < grant.signatures:
            if not counted:
                return 2, (
                    f"no grant lets {_who(signers)} use runner {job.runner_id!r} in {context}"
                )
            return 3, (
                f"runner {job.runner_id!r} in {context} needs {grant.signatures} signatures "
                f"from {', '.join(grant.who)}, the job has {len(counted)}; collect more"
            )
        if job.timeout > grant.max_timeout:
            return 4, (
                f"timeout {job.timeout} s is over the {grant.max_timeout} s the grant allows "
                f"for runner {job.runner_id!r}; ask for less"
            )
        for name in (*job.env_vars, *job.secrets):
            if hijacks(name) and name not in grant.env:
                return 5, (
                    f"env var {name} can hijack the job's process; a grant must list it by "
                    "exact name in `env` to allow it"
                )
            if not any(fnmatch.fnmatchcase(name, p) for p in grant.env):
                return 5, f"the grant does not let the job set env var {name}; add it to `env`"
        return 6, ""

    def allows(self, job: Job, signers: tuple[str, ...]) -> Grant:
        """The first grant that covers the job; :class:`NotAllowed` with the closest reason."""
        best = (-1, "the policy has no grants; add one (see `horus policy check`)")
        for grant in self.grants:
            rank, reason = self._mismatch(grant, job, signers)
            if not reason:
                return grant
            best = max(best, (rank, reason), key=lambda pair: pair[0])
        if not signers and best[0] < 3:
            raise NotAllowed(
                f"the job is unsigned and no grant allows unsigned jobs for runner "
                f"{job.runner_id!r}; sign it (--key PATH or HORUS_KEY)"
            )
        raise NotAllowed(best[1])


def _who(signers: tuple[str, ...]) -> str:
    if not signers:
        return "an unsigned job"
    return "key " + " and ".join(s[:20] + "..." for s in signers)


def parse(text: str, origin: str) -> Policy:
    """A policy from TOML text; :class:`ConfigError` names what is wrong and where."""
    try:
        return Policy.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"policy {origin} is not valid TOML ({exc}); fix it") from None
    except ValidationError as exc:
        line = explain(exc, what="policy").removeprefix("invalid policy: ")
        raise ConfigError(f"policy {origin} is invalid: {line}; fix it") from None


@dataclass
class _Loaded:
    stamp: tuple[int, int, int, int]
    policy: Policy | None
    error: ConfigError | None


class PolicyFile:
    """A policy file read again whenever it changes (its size, mtime, ctime or inode)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._loaded: _Loaded | None = None
        self._lock = threading.Lock()

    def exists(self) -> bool:
        """True when there is a file to read."""
        return self.path.exists()

    def current(self) -> Policy:
        """The policy as the file says now; :class:`ConfigError` while it is missing or bad."""
        try:
            info = os.stat(self.path)
        except OSError:
            raise ConfigError(
                f"no policy at {self.path}: workers refuse every job without one; create it "
                "with `horus init` or set HORUS_POLICY"
            ) from None
        stamp = (info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_ino)
        with self._lock:
            if self._loaded is None or self._loaded.stamp != stamp:
                try:
                    text = self.path.read_text(encoding="utf-8")
                    self._loaded = _Loaded(stamp, parse(text, str(self.path)), None)
                except (OSError, UnicodeDecodeError) as exc:
                    error = ConfigError(f"cannot read policy {self.path}: {exc}; fix it")
                    self._loaded = _Loaded(stamp, None, error)
                except ConfigError as exc:
                    self._loaded = _Loaded(stamp, None, exc)
            loaded = self._loaded
        if loaded.error is not None:
            raise loaded.error
        assert loaded.policy is not None
        return loaded.policy


def starter(local_key: str, worker_key: str) -> str:
    """The policy ``horus init`` writes: the local key may use every runner everywhere."""
    return f"""\
# Horus policy: who may run what where. Workers read this file again when it changes.
# See the README's "Trust" section for every field.

# The workers' public key: clients seal --secret values to it.
secrets_key = "{worker_key}"

# Keys or circles that may cancel any job (a job's own signers always may).
cancellers = ["local"]

[circles]
# This machine's key, made by `horus init`; the CLI signs with it.
local = ["{local_key}"]

[[grants]]
who = ["local"]
runners = ["*"]
contexts = ["*"]

# Unsigned jobs are refused unless a grant says so, for example:
# [[grants]]
# unsigned = true
# runners = ["shell"]
# contexts = ["sandbox"]
# max_timeout = 60
"""
