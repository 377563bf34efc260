"""Starting the HTTP agent's worker processes, as early in the run as can be.

A worker (`http_process.main`) takes about 0.2 s to start: Python, asyncio and httpx. The
plugin starts the workers a gate will need first thing in ``pytest_configure``, before it
imports the rest of itself, so they are ready by the first agent call; `ProcessHTTPAgent`
takes them over, and starts any more it needs itself. A worker nothing took (another plugin
made the agent, say) is stopped when pytest ends. Importing this module must cost nothing:
it imports no more than the plugin has already.

A worker runs in a session of its own, so a Ctrl-C at the terminal reaches only pytest,
which decides when the worker stops; it also exits when its stdin closes (when pytest ends or
is killed).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pytest_hgd.core.settings import Settings, is_http_spec

__all__ = ["SpareWorkers", "spawn_worker", "start_early"]

# The package's own directory first (not the current one, whose modules could shadow httpx).
_BOOTSTRAP = (
    "import sys; sys.path[0] = {root!r}; "
    "from pytest_hgd.agents.http_process import main; sys.exit(main())"
)
_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding the pytest_hgd package

WorkerProcess = subprocess.Popen[bytes]


def spawn_worker() -> WorkerProcess:
    """A new worker process, its three standard streams piped (unbuffered); raises OSError."""
    return subprocess.Popen(
        [sys.executable, "-c", _BOOTSTRAP.format(root=_ROOT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
        start_new_session=True,
    )


class SpareWorkers:
    """Workers started before the agent exists, for the first `ProcessHTTPAgent` to take."""

    def __init__(self) -> None:
        self._workers: list[WorkerProcess] = []

    def start(self, count: int) -> None:
        """Start ``count`` workers now; one that cannot start is left to the agent, which
        then reports why."""
        for _ in range(count):
            try:
                self._workers.append(spawn_worker())
            except OSError:
                return

    def take(self) -> WorkerProcess | None:
        """A spare worker still running, or None."""
        while self._workers:
            worker = self._workers.pop(0)
            if worker.poll() is None:
                return worker
            _close_pipes(worker)
        return None

    def close(self) -> None:
        """Stop the workers nothing took."""
        workers, self._workers = self._workers, []
        for worker in workers:
            _close_pipes(worker)
            worker.terminate()
        for worker in workers:
            try:
                worker.wait(timeout=5)
            except subprocess.TimeoutExpired:  # pragma: no cover - SIGTERM is not caught
                worker.kill()
                worker.wait()


def start_early(settings: Settings, *, runs_calls: bool) -> SpareWorkers:
    """The workers this run's HTTP agent will want, started now. None are started unless the
    agent is ``openai:MODEL`` with worker processes and this process ``runs_calls`` (not
    for ``--collect-only``, and not in xdist's controller: its workers start their own)."""
    spares = SpareWorkers()
    count = min(settings.http.workers, settings.concurrency)
    if count > 0 and runs_calls and is_http_spec(settings.agent):
        spares.start(count)
    return spares


def _close_pipes(worker: WorkerProcess) -> None:
    for pipe in (worker.stdin, worker.stdout, worker.stderr):
        if pipe is not None:
            pipe.close()
