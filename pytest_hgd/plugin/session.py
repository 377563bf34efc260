"""The per-run state of ``pytest --hgd``: one object, registered as a plugin while it runs."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import pytest

from pytest_hgd.agents.judge import Judge
from pytest_hgd.core.decision import RunEvidence, decide_run
from pytest_hgd.core.model import Conversation
from pytest_hgd.core.redact import redactor_for
from pytest_hgd.core.settings import Settings
from pytest_hgd.plugin import explore
from pytest_hgd.plugin.advice import next_command
from pytest_hgd.plugin.blaming import blame_decision
from pytest_hgd.plugin.builtins import Builtins
from pytest_hgd.plugin.early import EarlyStart
from pytest_hgd.plugin.items import GateItem, PairFile, PairItem, RolloutItem
from pytest_hgd.plugin.keys import SPARES_KEY
from pytest_hgd.plugin.lean import LeanProtocol
from pytest_hgd.plugin.outputs import (
    append_to_ledger,
    budget_note,
    hand_over,
    junit_properties,
    ledger_history,
    nothing_gated,
    redact_report,
    redecided_note,
    report_paths,
    unpriced,
    warn_of_pressure,
    write_reports,
)
from pytest_hgd.plugin.selection import SELECTION_KEY, Selection
from pytest_hgd.plugin.sharding import Sharding
from pytest_hgd.plugin.wiring import (
    call_settings,
    made_agent,
    policy,
    prompt_option,
    quiet_on_interrupt,
    registered_checks,
    registered_mutators,
)
from pytest_hgd.plugin.xdist_support import is_controller, is_worker, queued_items, share_of
from pytest_hgd.reports.report import build_report
from pytest_hgd.reports.summary import render_terminal
from pytest_hgd.run.evaluator import Evaluations, Evaluator
from pytest_hgd.run.prompts import git_commit
from pytest_hgd.run.rollout import RolloutResult, RolloutRunner
from pytest_hgd.run.runner import Scheduler
from pytest_hgd.storage.cache import ReplyCache
from pytest_hgd.suite.pairfile import is_pair_file


class HGDSession:
    """Prompts, agent, scheduler and the results gathered from the test reports."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.policy = policy(settings)
        self.candidate = prompt_option(
            settings.candidate, settings.candidate_base, "--hgd-candidate"
        )
        self.baseline = (
            prompt_option(settings.baseline, settings.baseline_base, "--hgd-baseline")
            if settings.baseline
            else None
        )
        self.cache = (
            ReplyCache(settings.cache_dir) if settings.write_cache or settings.read_cache else None
        )
        self.judge = Judge(settings.judge, self.cache)
        spares = config.stash.get(SPARES_KEY, None)
        config.pluginmanager.register(Builtins(settings, self.judge, spares), "hgd-builtins")
        self.registry = registered_checks(config)
        self.mutators = registered_mutators(config)
        self.agent = made_agent(config, settings.agent)
        self.cleared: int | None = None
        if settings.clear_cache and not is_worker(config):
            self.cleared = ReplyCache(settings.cache_dir).clear()
        self.scheduler = Scheduler(self.agent, self.cache, call_settings(settings))
        self.scheduler.budget = share_of(config, settings.max_calls)  # --hgd-max-calls
        self.redactor = redactor_for(
            (settings.http.api_key_env, settings.judge.api_key_env), settings.http.headers
        )
        if self.redactor.active:
            self.scheduler.uncacheable = self.redactor.finds
        self.all_items: list[pytest.Item] = []
        self.evaluator = Evaluator(
            self.scheduler, self.registry, self.candidate, self.baseline, settings.samples,
            settings.alpha, auto=settings.auto_samples, screen=settings.screen_samples,
        )  # fmt: skip
        self.sampled = False
        self.runnable_count = 0
        self.pairs: list[dict[str, Any]] = []
        self.rollouts: list[dict[str, Any]] = []
        self.rollouts_runner = RolloutRunner(
            self.scheduler, self.evaluator.prompts, self.registry, self._simulated_customer
        )
        self.skipped: list[dict[str, Any]] = []
        self.selection = Selection()
        self.sharding = Sharding(settings, self.selection)
        self.early = EarlyStart(config, self.evaluator, self._runnable, settings.shard)
        config.pluginmanager.register(LeanProtocol(), "hgd-lean")
        if settings.shard or settings.partial:
            config.pluginmanager.register(self.sharding, "hgd-sharding")
        self.report: dict[str, Any] | None = None
        self.notes: list[str] = []
        self.errors: list[str] = []
        self.unwritten: set[Path] = set()

    # collection ---------------------------------------------------------------------------
    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> PairFile | None:
        if is_pair_file(file_path):
            return PairFile.from_parent(parent, path=file_path)
        return None

    def pytest_ignore_collect(self, collection_path: Path) -> bool | None:
        """Never walk the reply cache (thousands of files) looking for tests."""
        if collection_path == self.settings.cache_dir:
            return True
        return None

    def pytest_collection(self, session: pytest.Session) -> None:
        """Warm the agent up while pytest collects (the HTTP agent's worker process starts)."""
        if not session.config.option.collectonly and not is_controller(self.config):
            self.scheduler.warm_up()

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self.early.collected(report)  # a pair file's calls start while pytest collects on

    def pytest_deselected(self, items: Sequence[pytest.Item]) -> None:
        self.selection.deselected += sum(1 for item in items if self._runnable(item))

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.all_items = list(session.items)
        self.early.finish(session.items)
        self.selection.collected = len(self._runnable_items())
        if not session.config.option.collectonly:
            # What collection built (items, pairs, their checks) lives until the run ends.
            # Frozen, it is left out of the full garbage collections during the run, each of
            # which would walk it again: about 45 ms apiece with 1000 pairs, in the summary.
            gc.freeze()

    # scheduling ---------------------------------------------------------------------------
    def _runnable(self, item: pytest.Item | None) -> bool:
        return isinstance(item, PairItem) and item.pair.retired is None and item.pair.review is None

    def _runnable_items(self) -> list[PairItem]:
        return [i for i in self.all_items if isinstance(i, PairItem) and self._runnable(i)]

    # rollouts -------------------------------------------------------------------------------
    def _simulated_customer(
        self, conversation: Conversation, transcript: list[dict[str, str]], recorded: str
    ) -> str | None:
        turn: str | None = self.config.hook.pytest_hgd_customer_turn(
            config=self.config,
            conversation=conversation,
            transcript=transcript,
            recorded=recorded,
        )
        return turn

    def roll_out(self, item: RolloutItem) -> tuple[RolloutResult | None, RolloutResult]:
        return self.rollouts_runner.results(item.nodeid, item.conversation)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        if not is_worker(self.config) and not session.config.option.collectonly:
            for rollout_item in self.all_items:
                if isinstance(rollout_item, RolloutItem):
                    self.rollouts_runner.start(rollout_item.nodeid, rollout_item.conversation)
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
            # Items' outcomes: each batch spends its pairs' share of --hgd-alpha (the
            # verdict is `decide_run`'s one decision over every pair).
            alpha = self.settings.alpha * len(batch) / max(self.runnable_count, len(batch))
            self.evaluator.decide_batch(
                [(i.nodeid, i.pair) for i in batch], alpha, None if worker else self._progress
            )
            if self.settings.auto_samples and not worker:
                self.say(self.evaluator.screen_status())
        return self.evaluator.evaluate(item.nodeid, item.pair)

    def _progress(self, done: int, total: int) -> None:
        self.say(f"hgd: sampling: {done}/{total} replies in", transient=done < total)

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
        if isinstance(item, GateItem) and item.hgd_payload and call.when == item.hgd_payload_phase:
            report.hgd = self.redactor.value(item.hgd_payload)  # type: ignore[attr-defined]
        if isinstance(item, GateItem) and item.hgd_payload and call.when == "teardown":
            report.user_properties += junit_properties(self.redactor.value(item.hgd_payload))
        if self.redactor.active and isinstance(item, GateItem):
            redact_report(report, self.redactor)
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        payload = getattr(report, "hgd", None)
        if isinstance(payload, dict):
            if payload.get("rollout"):
                self.rollouts.append(payload)
            else:
                (self.skipped if "status" in payload else self.pairs).append(payload)

    # the gate's end: probe, pressure, ledger, reports ------------------------------------
    def say(self, text: str, transient: bool = False) -> None:
        """A line on the terminal; a transient one is overwritten by the next on a tty."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        if transient and reporter.isatty:
            reporter.rewrite(text)
        else:
            reporter.write_line(text)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """xdist's controller: what a worker collected and deselected (each collects all)."""
        self.selection.merge(getattr(node, "workeroutput", {}).get(SELECTION_KEY))

    def evidence(self) -> RunEvidence:
        """What this run observed, as `decide_run` (or a shard's partial) takes it."""
        return RunEvidence(
            pairs=self.pairs,
            skipped=self.skipped,
            rollouts=self.rollouts,
            baseline_hash=self.baseline.sha256 if self.baseline else None,
            candidate_hash=self.candidate.sha256,
            agent=self.agent.identity,
            commit=git_commit(self.config.rootpath),
            selection=self.selection.summary(self.config, ran=len(self.pairs)),
        )

    def prompts(self) -> dict[str, Any]:
        return {
            role: {"source": prompt.source, "sha256": prompt.sha256} if prompt else None
            for role, prompt in (("candidate", self.candidate), ("baseline", self.baseline))
        }

    def build(self) -> dict[str, Any]:
        """Evidence in, one decision, the ledger record and the report out."""
        evidence = self.evidence()
        found = explore.search(self, evidence.partial)
        stopped = found is not None and found.interrupted  # Ctrl-C: no probe after it
        probed = explore.with_search(None if stopped else explore.probe(self), found)
        decision = decide_run(
            evidence, self.policy, ledger_history(self.settings.ledger, self.notes), probed
        )
        if decision.redecided:
            self.notes.append(redecided_note(decision.redecided))
        if found is not None and self.settings.search is not None:
            decision.record["search"] = explore.search_record(found, self.settings.search.policy)
        append_to_ledger(self.settings.ledger, decision.record, self.notes)
        blame = blame_decision(self, decision)  # --hgd-blame: after the decision, controller only
        report = build_report(
            evidence, decision, strict=self.settings.strict, prompts=self.prompts(), blame=blame
        )
        if found is not None:
            report["search"] = explore.search_report(self, found)
        return report

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        with quiet_on_interrupt():
            self._finish(session, exitstatus)

    def _finish(self, session: pytest.Session, exitstatus: int) -> None:
        self.scheduler.cancel_pending()
        self.scheduler.flush()  # every reply written to the cache, or its error known
        if self.scheduler.cache_error:
            self.notes.append(self.scheduler.cache_error)
        if self.cache is not None and self.cache.tampered:
            self.notes.append(
                f"reply cache: {self.cache.tampered} cached replies did not match their digest "
                f"(edited in {self.cache.path}?): not used, the agent was called instead"
            )
        if is_worker(self.config):
            self.selection.hand_to_controller(self.config)
        if is_worker(self.config) or session.config.option.collectonly:
            return
        if not self.pairs and not self.skipped and not self.rollouts:
            nothing_gated(self.selection, exitstatus, session, self.errors)
            return
        if exitstatus == pytest.ExitCode.INTERRUPTED:
            self.notes.append("the run was interrupted: no report and no ledger record written")
            return
        if self.settings.partial is not None:  # a CI shard: its evidence, no verdict
            self.notes.append(self.sharding.write(self.evidence(), self.prompts()))
            if self.settings.search:
                self.notes.append("search skipped: a shard's run makes no decision")
        else:
            self.report = self.build()  # the search's calls too: the budget note follows
        self.notes.extend(budget_note(self.scheduler.budget, self.settings.max_calls))
        if self.report is None:
            return
        if (self.report.get("search") or {}).get("interrupted"):
            session.exitstatus = pytest.ExitCode.INTERRUPTED
        self.notes.extend(unpriced(self.report, self.settings.prices))
        warn_of_pressure(self.report, self.settings.ledger or self.config.rootpath / "pytest-hgd")
        self.unwritten = write_reports(self.report, self.settings, self.errors)
        hand_over(self.config, self.report)
        failed = self.report["verdict"] == "fail" or bool(self.unwritten)
        if failed and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        with quiet_on_interrupt():
            self._summary(terminalreporter)

    def _summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.cleared is not None:
            terminalreporter.write_line(
                f"hgd: cleared {self.cleared} cached replies from {self.settings.cache_dir}"
            )
        if self.report is not None:
            terminalreporter.write_sep("=", "HGD gate")
        for note in self.notes:
            terminalreporter.write_line(f"hgd: {note}", yellow=True)
        for error in self.errors:
            terminalreporter.write_line(f"hgd: error: {error}", red=True, bold=True)
        if self.report is None:
            return
        advice = next_command(
            self.report,
            list(self.config.invocation_params.args),
            has_baseline=self.baseline is not None,
            lf_works=self.config.pluginmanager.has_plugin("cacheprovider"),
        )
        for text, markup in render_terminal(self.report, advice):
            terminalreporter.write_line(text, **markup)
        for kind, path in report_paths(self.settings):
            if path not in self.unwritten:
                terminalreporter.write_line(f"{kind} written to {path}")

    def close(self) -> None:
        if self.judge.started:
            with contextlib.suppress(Exception):  # closing is best effort
                self.scheduler.run_coroutine(self.judge.aclose()).result(timeout=5)
        self.scheduler.close()
        self.config.pluginmanager.unregister(name="hgd-builtins")
        self.config.pluginmanager.unregister(name="hgd-lean")


__all__ = ["HGDSession"]
