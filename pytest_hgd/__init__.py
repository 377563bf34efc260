"""pytest-hgd: the regression gate for LLM agent prompts, inside pytest."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

__all__ = ["HGDPressureWarning", "__version__"]

if TYPE_CHECKING:
    from pytest_hgd.plugin.warning_types import HGDPressureWarning


def __getattr__(name: str) -> object:
    # Lazy, so that importing a module of the package (the HTTP agent's worker process, say)
    # does not import pytest.
    if name == "HGDPressureWarning":
        from pytest_hgd.plugin.warning_types import HGDPressureWarning

        return HGDPressureWarning
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
