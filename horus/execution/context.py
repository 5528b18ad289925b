"""The services of one worker process, held in one object built from the settings when the
worker starts (nothing at import, no module globals): the store, the lifecycle and its
event bus, the trust gate, the runners this worker serves and their configuration."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from celery import Celery
from nacl.signing import SigningKey
from pydantic import BaseModel

from horus import registry
from horus.config import Settings
from horus.errors import ConfigError
from horus.runner import Runner
from horus.store.lifecycle import Lifecycle
from horus.store.records import Store
from horus.subscribers import default_bus
from horus.trust import keys
from horus.trust.gate import Gate


def runner_configs(path: Path) -> dict[str, dict[str, Any]]:
    """The tables of the worker's ``runners.toml`` (none when the file is missing)."""
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}; fix the file or remove it") from None
    tables = {name: value for name, value in data.items() if isinstance(value, dict)}
    if len(tables) != len(data):
        raise ConfigError(f"{path}: every entry must be a [runner] table; move settings into one")
    return tables


@dataclass
class WorkerContext:
    """What one worker process works with."""

    settings: Settings
    app: Celery
    #: the runners this worker serves, by name
    runners: dict[str, Runner]
    store: Store = field(init=False)
    lifecycle: Lifecycle = field(init=False)
    gate: Gate = field(init=False)
    #: each served runner's configuration, validated by its Config model
    configs: dict[str, BaseModel] = field(init=False)

    def __post_init__(self) -> None:
        self.store = Store(self.settings)
        self.lifecycle = Lifecycle(self.store, default_bus(self.store))
        self.gate = Gate(self.settings)
        raw = runner_configs(self.settings.home / "runners.toml")
        self.configs = {n: registry.configure(r, raw.get(n, {})) for n, r in self.runners.items()}

    @classmethod
    def serving(cls, settings: Settings, app: Celery, names: Sequence[str]) -> WorkerContext:
        """The context of a worker serving the installed runners ``names`` (all if empty);
        an unknown name is refused, listing the installed ones."""
        installed = registry.installed()
        chosen = list(names) or sorted(installed.runners)
        return cls(settings, app, {name: installed.get(name) for name in chosen})

    @cached_property
    def worker_key(self) -> SigningKey:
        """The key this worker opens secrets with (read once)."""
        return self.gate.worker_key()

    @cached_property
    def result_key(self) -> SigningKey | None:
        """The key this worker signs results with: the worker key, if this machine has it."""
        return keys.load_optional(self.settings.worker_key_path)
