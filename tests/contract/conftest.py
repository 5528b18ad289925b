"""The contract suite runs against every runner installed in this environment, and the
third-party test runners of ``tests/plugins`` (installed there only by a dist-info folder),
so that folder is put on ``sys.path`` before the runners are discovered."""

from __future__ import annotations

import sys

from horus import registry
from tests.harness import PLUGINS

if str(PLUGINS) not in sys.path:
    sys.path.append(str(PLUGINS))
    registry.installed.cache_clear()
