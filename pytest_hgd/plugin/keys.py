"""Where the run's state lives in ``config.stash``: imported by the plugin at start-up, so it
imports nothing heavy."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_hgd.agents.http_spawn import SpareWorkers
    from pytest_hgd.plugin.session import HGDSession

SESSION_KEY: pytest.StashKey[HGDSession] = pytest.StashKey()
SPARES_KEY: pytest.StashKey[SpareWorkers] = pytest.StashKey()  # HTTP workers started early
