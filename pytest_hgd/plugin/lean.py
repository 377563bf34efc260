"""A lean run protocol for the gate's items, used when nothing needs pytest's full one.

Every pytest item normally goes through output capture (file descriptors swapped in each of
its three phases), log capture and the evaluation of skip/xfail marks: about 0.4 ms of the
1 ms an item costs in a 10,000-pair gate (docs/performance.md). The gate's items print
nothing, log nothing and carry no such marks. So when the run holds only gate items, no
plugin outside pytest itself hooks the phases (``pytest_runtest_setup/call/teardown``) or
replaces the protocol, and no debugger or setup display is asked for, each item runs its
setup, test and teardown directly, with the hooks that carry its results: logstart,
makereport, logreport, logfinish. Wrappers of ``pytest_runtest_protocol`` (warnings,
timeouts, ours) still wrap it. Anything else gets pytest's own protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import pytest

from pytest_hgd.plugin.items import GateItem

PHASES = ("pytest_runtest_setup", "pytest_runtest_call", "pytest_runtest_teardown")
MARKS = ("skip", "skipif", "xfail", "usefixtures", "filterwarnings")
Phase = Literal["setup", "call", "teardown"]
# Plugins whose phase hooks act only on their own Python test functions, never on ours:
# hypothesis's wraps the call of @given tests.
ONLY_THEIR_OWN = frozenset({"hypothesispytest"})
OPTIONS = ("usepdb", "trace", "setuponly", "setupplan", "setupshow")


def _pytest_own(plugin: object) -> bool:
    """A plugin that is part of pytest itself (a module of ``_pytest``, or an object from
    one)."""
    name = getattr(plugin, "__name__", None)
    module = name if isinstance(name, str) else type(plugin).__module__
    return module == "_pytest" or module.startswith("_pytest.")


def lean_possible(config: pytest.Config, items: Sequence[pytest.Item], ours: object) -> bool:
    """True when the lean protocol runs these items as pytest's would."""
    if any(config.getoption(option, False) for option in OPTIONS):
        return False
    for name in PHASES:
        for impl in getattr(config.hook, name).get_hookimpls():
            if not _pytest_own(impl.plugin) and impl.plugin_name not in ONLY_THEIR_OWN:
                return False
    for impl in config.hook.pytest_runtest_protocol.get_hookimpls():
        wraps = impl.hookwrapper or getattr(impl, "wrapper", False)
        if not wraps and impl.plugin is not ours and not _pytest_own(impl.plugin):
            return False  # a plugin that runs items its own way (reruns, say)
    return all(
        isinstance(item, GateItem) and not any(item.get_closest_marker(m) for m in MARKS)
        for item in items
    )


class LeanProtocol:
    """Registered by the session; decides at the end of collection."""

    def __init__(self) -> None:
        self.active = False

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.active = lean_possible(session.config, session.items, self)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> bool | None:
        if not self.active or not isinstance(item, GateItem):
            return None  # pytest's own protocol runs it
        ihook = item.ihook
        ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        if _phase(item, "setup", item.setup).passed:
            _phase(item, "call", item.runtest)
        _phase(item, "teardown", item.teardown)
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True


def _phase(item: pytest.Item, when: Phase, run: Callable[[], None]) -> pytest.TestReport:
    """One phase as pytest's runner makes it: the call, its report, the report logged."""
    reraise: tuple[type[BaseException], ...] = (pytest.exit.Exception, KeyboardInterrupt)
    call = pytest.CallInfo.from_call(run, when=when, reraise=reraise)
    report: pytest.TestReport = item.ihook.pytest_runtest_makereport(item=item, call=call)
    item.ihook.pytest_runtest_logreport(report=report)
    return report
