"""Start each pair's agent calls as soon as its file is collected, so the first request goes
out while pytest is still collecting the rest (about 0.1 ms a pair: 1.4 s for 10,000).

Only when the run will keep every collected pair: no ``-k``, ``-m``, ``--lf``, ``--deselect``
or node ids, and not under xdist (each worker runs a share of the items). A shard keeps its
own pairs only (`core.shards.shard_of`). If a plugin still deselects a pair started early,
its calls not yet made are cancelled when collection ends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from pytest_hgd.core.shards import shard_of
from pytest_hgd.plugin.items import PairItem
from pytest_hgd.plugin.xdist_support import is_controller, is_worker, will_distribute
from pytest_hgd.run.evaluator import Evaluator


def keeps_every_pair(config: pytest.Config) -> bool:
    """True when nothing on the command line leaves collected pairs out of the run."""
    option = config.option
    return not (
        getattr(option, "keyword", "")
        or getattr(option, "markexpr", "")
        or getattr(option, "lf", False)
        or getattr(option, "deselect", None)
        or getattr(option, "collectonly", False)
        or any("::" in str(arg) for arg in config.args)
    )


class EarlyStart:
    """Submits the pairs of each collected pair file; cancels those later deselected."""

    def __init__(
        self,
        config: pytest.Config,
        evaluator: Evaluator,
        runnable: Callable[[pytest.Item], bool],
        shard: tuple[int, int] | None,
    ) -> None:
        self.evaluator = evaluator
        self.runnable = runnable
        self.shard = shard
        self.started: set[str] = set()
        self.active = (
            keeps_every_pair(config)
            and not is_worker(config)
            and not is_controller(config)
            and not will_distribute(config)
        )

    def collected(self, report: pytest.CollectReport) -> None:
        if not self.active or not report.passed:
            return
        for item in report.result:
            if not isinstance(item, PairItem) or not self.runnable(item):
                continue
            if self.shard is not None and shard_of(item.nodeid, self.shard[1]) != self.shard[0]:
                continue
            self.evaluator.submit(item.nodeid, item.pair)
            self.started.add(item.nodeid)

    def finish(self, items: Sequence[pytest.Item]) -> int:
        """Cancel the calls not yet made of pairs started early but not kept; how many."""
        kept = {item.nodeid for item in items}
        dropped = self.started - kept
        for node_id in dropped:
            for futures in self.evaluator.futures.pop(node_id, {}).values():
                for future in futures:
                    future.cancel()
        self.started.clear()
        return len(dropped)
