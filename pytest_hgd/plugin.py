"""The ``pytest11`` entry point: hook functions only; each delegates."""

from __future__ import annotations

import pytest

from . import hookspecs
from .keys import SESSION_KEY
from .options import add_options, resolve


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("hgd", default=False):
        return
    from .session import HGDSession  # the gate's modules load only when it runs

    session = HGDSession(config, resolve(config))
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session, "hgd-session")


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()
        config.pluginmanager.unregister(session)
        del config.stash[SESSION_KEY]
