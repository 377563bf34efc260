"""``--hgd-shard=I/N`` and ``--hgd-partial=PATH``: run one CI shard, write its evidence.

Registered by the session when either option is given. Every shard collects the whole suite
(as xdist workers do), hashes it, and keeps only its own pairs and rollouts
(`core.shards.shard_of`); with ``--hgd-partial`` the run writes its evidence and the
settings that must match instead of deciding, and ``hgd merge`` makes the one decision.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_hgd.core.decision import RunEvidence
from pytest_hgd.core.settings import Settings
from pytest_hgd.core.shards import partial_document, policy_settings, shard_of, suite_digest
from pytest_hgd.plugin.items import PairItem, RolloutItem
from pytest_hgd.plugin.wiring import policy
from pytest_hgd.reports.report import write_partial

if TYPE_CHECKING:
    from pytest_hgd.plugin.selection import Selection


def decision_settings(settings: Settings) -> dict[str, Any]:
    """The settings every shard of one run must share: the gate's rules, and how pairs are
    sampled."""
    return {
        **policy_settings(policy(settings)),
        "samples": settings.samples,
        "auto_samples": settings.auto_samples,
        "screen_samples": settings.screen_samples,
    }


class Sharding:
    """Keeps this shard's items; remembers the whole suite for the partial."""

    def __init__(self, settings: Settings, selection: Selection) -> None:
        self.settings = settings
        self.selection = selection  # holds the suite: under xdist a worker hands it over

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        entries = [
            (item.nodeid, item.pair.content_hash() if isinstance(item, PairItem) else "rollout")
            for item in items
            if isinstance(item, RolloutItem) or _enforced(item)
        ]
        self.selection.suite = {
            "sha256": suite_digest(entries),
            "enforced": sum(1 for item in items if _enforced(item)),
        }
        if self.settings.shard is None:
            return
        index, count = self.settings.shard
        others = [item for item in items if shard_of(item.nodeid, count) != index]
        if others:
            items[:] = [item for item in items if shard_of(item.nodeid, count) == index]
            before = self.selection.deselected
            config.hook.pytest_deselected(items=others)
            self.selection.sharded += self.selection.deselected - before
            self.selection.deselected = before
        self.selection.shard = f"{index}/{count}"

    def write(self, evidence: RunEvidence, prompts: dict[str, Any]) -> str:
        """Write this shard's partial (to ``--hgd-partial``); the line the summary says."""
        path = self.settings.partial or Path("partial.json")
        shard = self.settings.shard or (1, 1)
        document = partial_document(
            evidence,
            shard=shard,
            settings=decision_settings(self.settings),
            suite=self.selection.suite or {"sha256": suite_digest([]), "enforced": 0},
            prompts=prompts,
        )
        write_partial(document, path)
        count = len(evidence.pairs)
        return (
            f"shard {shard[0]}/{shard[1]}: evidence of {count} pair{'s' * (count != 1)} "
            f"written to {path}; `hgd merge` decides once it has every shard's partial"
        )


def _enforced(item: pytest.Item) -> bool:
    return isinstance(item, PairItem) and item.pair.retired is None and item.pair.review is None
