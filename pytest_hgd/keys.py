"""Where the run's state lives in ``config.stash``: imported by the plugin at start-up, so it
imports nothing heavy."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .session import HGDSession

SESSION_KEY: pytest.StashKey[HGDSession] = pytest.StashKey()
