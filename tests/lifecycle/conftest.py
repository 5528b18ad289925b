"""Fixtures of the lifecycle rules: a store and a lifecycle on the session's embedded Redis,
and a runner id of each test's own (the Redis is shared with the whole session)."""

from __future__ import annotations

import uuid

import pytest

from horus import config
from horus.services.embedded import EmbeddedRedis
from horus.store.lifecycle import Lifecycle
from horus.store.records import Store


@pytest.fixture
def store(embedded_redis: EmbeddedRedis) -> Store:
    return Store(config.load())


@pytest.fixture
def life(store: Store) -> Lifecycle:
    return Lifecycle(store)


@pytest.fixture
def runner_id() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"
