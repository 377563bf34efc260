"""Which of the suite's enforced pairs a run ran, and why not all of them (a partial run).

A run that leaves enforced pairs out (``-k``, ``-m``, ``--lf``, ``--deselect``, node ids on
the command line, ``-x``/``--maxfail`` stopping early) is no gate verdict: its report says
``"partial": true``, its summary never says PASS, and the ledger keeps it out of pressure,
trends and growth. Under xdist each worker collects the whole suite and hands its counts to
the controller, which decides as a serial run would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # reads the config the session hands it; never imports pytest itself
    import pytest

SELECTION_KEY = "hgd_selection"  # the worker's entry in xdist's ``workeroutput``


@dataclass
class Selection:
    collected: int = 0  # enforced pairs collected and selected to run
    deselected: int = 0  # enforced pairs deselected after collection
    sharded: int = 0  # enforced pairs left to other shards (--hgd-shard)
    shard: str = ""  # "I/N" with --hgd-shard
    suite: dict[str, Any] = field(default_factory=dict)  # the whole suite's hash and size

    def merge(self, counts: object) -> None:
        """Counts a worker handed over (every worker collects the same suite)."""
        if isinstance(counts, dict):
            self.collected = max(self.collected, int(counts.get("collected", 0)))
            self.deselected = max(self.deselected, int(counts.get("deselected", 0)))
            self.sharded = max(self.sharded, int(counts.get("sharded", 0)))
            self.shard = str(counts.get("shard", self.shard))
            self.suite = dict(counts.get("suite") or self.suite)

    def hand_to_controller(self, config: pytest.Config) -> None:
        output = getattr(config, "workeroutput", None)
        if isinstance(output, dict):
            output[SELECTION_KEY] = {
                "collected": self.collected,
                "deselected": self.deselected,
                "sharded": self.sharded,
                "shard": self.shard,
                "suite": self.suite,
            }

    def summary(self, config: pytest.Config, ran: int) -> dict[str, Any]:
        """``{"ran", "enforced", "why", "at_least"}``: ``why`` is empty for a run of the whole
        suite; ``at_least`` when ``enforced`` is a lower bound (files left uncollected)."""
        why: list[str] = []
        if self.deselected:
            why.append(f"{self.deselected} deselected (-k, -m, --lf or --deselect)")
        files_skipped = _last_failed_only(config)
        if files_skipped:
            why.append("--lf: files without earlier failures were not collected")
        if any("::" in str(arg) for arg in config.args):
            why.append("node ids on the command line")
        if self.sharded:
            why.append(f"--hgd-shard={self.shard}: {self.sharded} pairs are other shards'")
        if ran < self.collected:
            why.append(f"{self.collected - ran} not run (-x or --maxfail stopped the run)")
        enforced = max(ran, self.collected + self.deselected + self.sharded)
        # the pairs of files --lf did not collect are not counted: M is a lower bound then
        return {"ran": ran, "enforced": enforced, "why": why, "at_least": files_skipped}


def _last_failed_only(config: pytest.Config) -> bool:
    """``--lf`` with earlier pair failures on record: pytest collects only their files."""
    cache = getattr(config, "cache", None)
    if not config.getoption("lf", False) or cache is None:
        return False
    failed = cache.get("cache/lastfailed", {})
    return isinstance(failed, dict) and any(".hgd.y" in str(node_id) for node_id in failed)
