"""The per-run state of ``pytest --hgd``: one object, registered as a plugin while it runs."""

from __future__ import annotations

import shlex
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from . import gate
from .agents import Agent, AgentSpecError, is_http_spec, load_python_agent
from .cache import ReplyCache
from .checks import BUILTIN_CHECKS, CheckType
from .evaluator import Decision, Evaluations, Evaluator
from .http_agent import HTTPAgent, HTTPAgentSettings
from .items import SESSION_KEY, PairFile, PairItem
from .model import Evaluation
from .options import Settings
from .pairfile import is_pair_file
from .pressure import compute_pressure
from .prompts import Prompt, PromptError, load_prompt
from .report import build_report, render_terminal, write_json, write_markdown
from .runner import CallSettings, Scheduler
from .xdist_support import is_worker, queued_items


def make_agent(settings: Settings, rootdir: Path) -> Agent:
    """The agent named by ``--hgd-agent``: ``openai:MODEL`` or ``package.module:function``."""
    if not is_http_spec(settings.agent):
        return load_python_agent(settings.agent, rootdir, settings.concurrency)
    http = settings.http
    try:
        return HTTPAgent(
            HTTPAgentSettings(
                model=settings.agent.partition(":")[2],
                base_url=http.base_url,
                api_key_env=http.api_key_env,
                temperature=http.temperature,
                max_tokens=http.max_tokens,
                headers=http.headers,
                timeout=settings.timeout,
                max_retries=http.max_retries,
                max_connections=settings.concurrency,
            )
        )
    except ValueError as exc:
        raise AgentSpecError(str(exc)) from None


def _load(spec: str, base: Path, option: str) -> Prompt:
    try:
        return load_prompt(spec, base)
    except PromptError as exc:
        raise pytest.UsageError(f"{option}: {exc}") from None


class HGDSession:
    """Prompts, agent, scheduler and the results gathered from the test reports."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.registry: dict[str, CheckType] = {c.name: c for c in BUILTIN_CHECKS}
        self.candidate = _load(settings.candidate, settings.candidate_base, "--hgd-candidate")
        self.baseline = (
            _load(settings.baseline, settings.baseline_base, "--hgd-baseline")
            if settings.baseline
            else None
        )
        try:
            self.agent = make_agent(settings, config.rootpath)
        except AgentSpecError as exc:
            raise pytest.UsageError(f"--hgd-agent={settings.agent}: {exc}") from None
        self.cache = (
            ReplyCache(settings.cache_dir) if settings.write_cache or settings.read_cache else None
        )
        self.cleared: int | None = None
        if settings.clear_cache and not is_worker(config):
            self.cleared = ReplyCache(settings.cache_dir).clear()
        self.scheduler = Scheduler(
            self.agent,
            self.cache,
            CallSettings(
                timeout=settings.timeout,
                concurrency=settings.concurrency,
                agent_version=settings.agent_version,
                read_cache=settings.read_cache,
                write_cache=settings.write_cache,
            ),
        )
        self.all_items: list[pytest.Item] = []
        self.evaluator = Evaluator(
            self.scheduler,
            self.registry,
            self.candidate,
            self.baseline,
            settings.samples,
            settings.alpha,
        )
        self.sampled = False
        self.runnable_count = 0
        self.pairs: list[dict[str, Any]] = []
        self.skipped: list[dict[str, Any]] = []
        self.report: dict[str, Any] | None = None

    # collection ---------------------------------------------------------------------------
    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> PairFile | None:
        if is_pair_file(file_path):
            return PairFile.from_parent(parent, path=file_path)
        return None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.all_items = list(session.items)

    # scheduling ---------------------------------------------------------------------------
    def _runnable(self, item: pytest.Item | None) -> bool:
        return isinstance(item, PairItem) and item.pair.retired is None and item.pair.review is None

    def _runnable_items(self) -> list[PairItem]:
        return [i for i in self.all_items if isinstance(i, PairItem) and self._runnable(i)]

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        runnable = self._runnable_items()
        self.sampled = any(self.evaluator.samples(i.pair) > 1 for i in runnable)
        self.runnable_count = len(runnable)
        if not is_worker(self.config) and not session.config.option.collectonly:
            for item in runnable:
                self.evaluator.submit(item.nodeid, item.pair)
        return (yield)

    def _queued(self) -> list[PairItem]:
        """Under xdist: the runnable items queued on this worker (a window of them)."""
        window = 2 * self.settings.concurrency
        queued = [
            self.all_items[i]
            for i in queued_items(self.config, window)
            if 0 <= i < len(self.all_items)
        ]
        return [i for i in queued if isinstance(i, PairItem) and self._runnable(i)]

    def evaluate(self, item: PairItem) -> Evaluations:
        """The item's evaluations; in a sampled run, once its whole batch is decided."""
        worker = is_worker(self.config)
        if worker:
            for other in self._queued():
                self.evaluator.submit(other.nodeid, other.pair)
        if self.sampled and item.nodeid not in self.evaluator.decisions:
            batch = [item, *self._queued()] if worker else self._runnable_items()
            batch = [i for i in batch if i.nodeid not in self.evaluator.decisions]
            # Each batch spends the share of the error budget of the pairs it decides, so
            # batches on xdist workers together never spend more than --hgd-alpha.
            alpha = self.settings.alpha * len(batch) / max(self.runnable_count, len(batch))
            self.evaluator.decide_batch(
                [(i.nodeid, i.pair) for i in batch], alpha, None if worker else self._progress
            )
        return self.evaluator.evaluate(item.nodeid, item.pair)

    def _progress(self, done: int, total: int) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        text = f"hgd: sampling: {done}/{total} replies in"
        if done == total or not reporter.isatty:
            reporter.write_line(text)
        else:
            reporter.rewrite(text)

    def decide(
        self, item: PairItem, baseline: Evaluation | None, candidate: Evaluation
    ) -> Decision:
        return self.evaluator.decision(item.nodeid, baseline, candidate)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        result = yield
        if item.session.shouldfail or item.session.shouldstop:
            self.scheduler.cancel_pending()
        return result

    # results ------------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if isinstance(item, PairItem) and item.hgd_payload and call.when == item.hgd_payload_phase:
            report.hgd = item.hgd_payload  # type: ignore[attr-defined]
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        payload = getattr(report, "hgd", None)
        if isinstance(payload, dict):
            (self.skipped if "status" in payload else self.pairs).append(payload)

    def _calls(self) -> dict[str, Any]:
        calls: dict[str, Any] = {"baseline": 0, "candidate": 0, "cache_hits": {}}
        for pair in self.pairs:
            for role in ("baseline", "candidate"):
                result = pair.get(role)
                if result:
                    calls[role] += result.get("called", 0)
                    hits = result["runs"] - result.get("called", 0)
                    calls["cache_hits"][role] = calls["cache_hits"].get(role, 0) + hits
        return calls

    def build(self) -> dict[str, Any]:
        prompts = {
            "candidate": {"source": self.candidate.source, "sha256": self.candidate.sha256},
            "baseline": {"source": self.baseline.source, "sha256": self.baseline.sha256}
            if self.baseline
            else None,
        }
        return build_report(
            self.pairs,
            self.skipped,
            strict=self.settings.strict,
            prompts=prompts,
            agent=self.agent.identity,
            calls=self._calls(),
            pressure=self.pressure(),
            samples={"max": max(self._sample_counts(), default=1), "alpha": self.settings.alpha},
        )

    def _sample_counts(self) -> list[int]:
        return [
            p[role]["runs"] for p in self.pairs for role in ("baseline", "candidate") if p.get(role)
        ]

    def run_record(self) -> dict[str, Any]:
        """This run in the ledger's record format (without its pressure)."""
        counts = gate.count_deltas(p["delta"] for p in self.pairs)
        return {
            "baseline_hash": self.baseline.sha256 if self.baseline else None,
            "candidate_hash": self.candidate.sha256,
            "counts": counts,
            "verdict": gate.verdict(counts, self.settings.strict),
            "regressed": sorted(p["id"] for p in self.pairs if p["delta"] == "regressed"),
            "pairs": {
                p["id"]: {
                    "kind": p["kind"],
                    "delta": p["delta"],
                    "baseline": [p["baseline"]["passes"], p["baseline"]["runs"]]
                    if p.get("baseline")
                    else None,
                    "candidate": [p["candidate"]["passes"], p["candidate"]["runs"]]
                    if p.get("candidate")
                    else None,
                }
                for p in self.pairs
            },
            "retired": sorted(s["id"] for s in self.skipped if s["status"] == "retired"),
            "pending_review": sum(1 for s in self.skipped if s["status"] == "pending_review"),
        }

    def pressure(self) -> dict[str, Any]:
        return compute_pressure(self.run_record(), [])

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.scheduler.cancel_pending()
        if is_worker(self.config) or session.config.option.collectonly:
            return
        if not self.pairs and not self.skipped:
            return
        self.report = self.build()
        if self.settings.report:
            write_json(self.report, self.settings.report)
        if self.settings.markdown:
            write_markdown(self.report, self.settings.markdown)
        if self.report["verdict"] == "fail" and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _next_command(self) -> str:
        assert self.report is not None
        args = shlex.join(["pytest", *self.config.invocation_params.args])
        if self.report["verdict"] == "fail":
            return f"fix the prompt, then rerun the failing pairs first: {args} --lf"
        if self.baseline is None:
            return f"compare against the champion: {args} --hgd-baseline=git:main:PATH"
        return "the candidate passes the gate: merge it to make it the champion"

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.cleared is not None:
            terminalreporter.write_line(
                f"hgd: cleared {self.cleared} cached replies from {self.settings.cache_dir}"
            )
        if self.report is None:
            return
        terminalreporter.write_sep("=", "HGD gate")
        for text, markup in render_terminal(self.report, self._next_command()):
            terminalreporter.write_line(text, **markup)
        for kind, path in (
            ("JSON report", self.settings.report),
            ("Markdown report", self.settings.markdown),
        ):
            if path:
                terminalreporter.write_line(f"{kind} written to {path}")

    def close(self) -> None:
        self.scheduler.close()


__all__ = ["SESSION_KEY", "HGDSession"]
