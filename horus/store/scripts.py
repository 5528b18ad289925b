"""The lifecycle's Lua scripts: read from ``lua/*.lua`` once, each with ``lib.lua`` in front,
and called with the key names of :mod:`horus.store.keys`."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

import redis

from horus.store import keys

NAMES = ("create", "discard", "close", "start", "renew", "exited", "end", "published")


@cache
def source(name: str) -> str:
    """The text of script ``name``, with the shared library in front."""
    folder = files("horus.store") / "lua"
    return (folder / "lib.lua").read_text() + "\n" + (folder / f"{name}.lua").read_text()


class Scripts:
    """The lifecycle scripts registered on one Redis client."""

    def __init__(self, client: redis.Redis[str]) -> None:
        self._scripts = {name: client.register_script(source(name)) for name in NAMES}

    def call(
        self,
        name: str,
        job_id: str,
        *args: object,
        extra_keys: tuple[str, ...] = (),
        client: redis.client.Pipeline[str] | None = None,
    ) -> Any:
        """Run script ``name`` on job ``job_id``; ``args`` follow the key prefixes. With
        ``client`` (a pipeline) the call is queued there, its answer in the pipeline's."""
        head_keys, head_args = keys.lifecycle(job_id)
        return self._scripts[name](
            keys=[*head_keys, *extra_keys], args=[*head_args, *map(str, args)], client=client
        )
