"""The warnings pytest-hgd issues, so users can filter them (``-W``, ``filterwarnings``)."""

from __future__ import annotations

import pytest


class HGDPressureWarning(pytest.PytestWarning):
    """Constraint pressure reached ``hgd_pressure_warn`` or has been rising over the ledger."""

    __module__ = "pytest_hgd"
