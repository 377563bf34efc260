"""pytest-hgd: the regression gate for LLM agent prompts, inside pytest."""

from __future__ import annotations

__version__ = "0.1.0"

from .warning_types import HGDPressureWarning

__all__ = ["HGDPressureWarning", "__version__"]
