"""The ``pytest11`` entry point: hook functions only; each delegates."""

from __future__ import annotations

import gc
import signal
import threading
from typing import Any

import pytest

from pytest_hgd.agents.http_spawn import start_early
from pytest_hgd.plugin import hookspecs
from pytest_hgd.plugin.keys import SESSION_KEY, SPARES_KEY
from pytest_hgd.plugin.options import add_options, resolve
from pytest_hgd.plugin.xdist_support import will_distribute


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"pytest-hgd: stopped by signal {signum}")


def stop_cleanly_on_sigterm(config: pytest.Config) -> None:
    """A CI timeout sends SIGTERM, which would kill Python mid-write: turn it into the same
    clean stop as Ctrl-C (no report, no ledger record, no temporary files left)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        config.stash[SIGTERM_KEY] = signal.signal(signal.SIGTERM, _interrupt)


SIGTERM_KEY: pytest.StashKey[Any] = pytest.StashKey()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("hgd", default=False):
        return
    settings = resolve(config)
    runs_calls = not config.option.collectonly and not will_distribute(config)
    config.stash[SPARES_KEY] = start_early(settings, runs_calls=runs_calls)  # start while we import
    from pytest_hgd.plugin.session import HGDSession  # the gate's modules load only when it runs

    session = HGDSession(config, settings)
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session, "hgd-session")
    stop_cleanly_on_sigterm(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    previous = config.stash.get(SIGTERM_KEY, None)
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()
        config.pluginmanager.unregister(session)
        del config.stash[SESSION_KEY]
        # pytest's clean-up, next, runs gc.collect() five times over every object still
        # alive, to report errors raised by finalizers: 0.35 s after 1000 pairs. One
        # collection here reports those the same way; what survives it is still in use, so
        # it is frozen out of the five (at exit, Python does not collect it anyway; a
        # process that runs pytest in-process more than once keeps it frozen).
        gc.collect()
        gc.freeze()
    spares = config.stash.get(SPARES_KEY, None)
    if spares is not None:  # workers the agent did not take
        spares.close()
        del config.stash[SPARES_KEY]
