"""``python -m pytest_hgd``: the ``hgd`` command."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
