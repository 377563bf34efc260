"""What pytest-hgd needs to know about pytest-xdist, in one place."""

from __future__ import annotations

import pytest


def is_worker(config: pytest.Config) -> bool:
    """True in an xdist worker process (results are written by the controller only)."""
    return hasattr(config, "workerinput")


def share_of(config: pytest.Config, total: int | None) -> int | None:
    """This process's share of a budget of ``total`` (None: no budget): all of it in a
    serial run; under xdist, worker ``gwI`` of N gets total // N, plus one for the first
    total % N workers."""
    if total is None or not is_worker(config):
        return total
    workerinput = getattr(config, "workerinput", {})
    count = int(workerinput.get("workercount", 1))
    index = int(str(workerinput.get("workerid", "gw0")).lstrip("gw") or 0)
    return total // count + (1 if index < total % count else 0)


def is_controller(config: pytest.Config) -> bool:
    """True in the xdist controller process, which runs no test itself."""
    return config.pluginmanager.has_plugin("dsession")


def will_distribute(config: pytest.Config) -> bool:
    """True in what will be the xdist controller, known from the options alone (as xdist
    decides it), so already in ``pytest_configure``, before xdist registers its session."""
    if is_worker(config):
        return False
    return getattr(config.option, "dist", "no") != "no" and bool(getattr(config.option, "tx", None))


def queued_items(config: pytest.Config, window: int) -> list[int]:
    """Indices (into the session's items) of the tests queued on this worker, next first.

    xdist hands a worker its tests a batch at a time through a queue it keeps on its
    ``WorkerInteractor`` plugin. Reading that queue lets the worker start the agent calls of
    its coming tests while pytest runs the current one. The queue is not public API, so any
    change in xdist degrades this to "no look-ahead" rather than an error;
    ``tests/test_private_apis.py`` pins where it is (xdist >= 3.6) and tests the fallback.
    """
    for plugin in config.pluginmanager.get_plugins():
        queue = getattr(plugin, "torun", None)
        if queue is None or not hasattr(queue, "lock"):
            continue
        try:
            with queue.lock() as pending:
                indices = [i for i in list(pending)[:window] if isinstance(i, int)]
        except Exception:  # a changed xdist (tests/test_private_apis.py)
            return []
        upcoming = getattr(plugin, "nextitem_index", None)
        return ([upcoming] if isinstance(upcoming, int) else []) + indices
    return []
