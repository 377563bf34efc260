"""The one File/Item pair: a pair file collects one item per pair; an item runs the gate."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_hgd.core import gate
from pytest_hgd.core.checks import excerpt
from pytest_hgd.core.errors import PairFileError
from pytest_hgd.core.model import Conversation, Delta, Evaluation, Pair
from pytest_hgd.core.pairs import screen_payload
from pytest_hgd.core.stats import PassCounts, flaky, wilson_interval
from pytest_hgd.core.text import printable
from pytest_hgd.plugin.keys import SESSION_KEY
from pytest_hgd.run.rollout import RolloutResult
from pytest_hgd.suite.pairfile import load_conversation

if TYPE_CHECKING:
    from pytest_hgd.plugin.session import HGDSession


REPLY_EXCERPT = 400  # characters of a reply shown in failure texts and reports


class PairFailed(Exception):
    """A pair regressed or failed: the message says which check and shows the reply."""


def result_payload(
    evaluation: Evaluation | None, confirm: PassCounts | None = None
) -> dict[str, Any] | None:
    """Small JSON-able summary of one prompt's evaluation, to ride on the test report;
    ``confirm``: the fresh baseline samples a close pair drew to confirm, part of its runs."""
    if evaluation is None:
        return None
    failure = evaluation.first_failure()
    first_reply = next((r.text for r in evaluation.replies if r.text is not None), None)
    low, high = wilson_interval(evaluation.passes, evaluation.runs)
    passes, called = evaluation.fresh
    fresh = {"fresh": [passes, called]} if 0 < called < evaluation.runs else {}
    return {
        "passes": evaluation.passes,
        "runs": evaluation.runs,
        "interval": [round(low, 4), round(high, 4)],
        "failed_check": failure[0].name if failure else None,
        "message": failure[0].message if failure else None,
        "reply": excerpt(failure[1] if failure else first_reply or "", REPLY_EXCERPT),
        "called": sum(1 for r in evaluation.replies if not r.cached),
        **fresh,  # a pool partly from the cache: what this run's own calls gave
        **({"confirm": [confirm.passes, confirm.runs]} if confirm else {}),
        **_usage(evaluation),
    }


def _usage(evaluation: Evaluation) -> dict[str, Any]:
    """The tokens of the calls made for it, where the agent reported them."""
    reported = [r.usage for r in evaluation.replies if r.usage is not None and not r.cached]
    if not reported:
        return {}
    tokens_in, tokens_out = (sum(side) for side in zip(*reported, strict=True))
    return {
        "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out, "calls": len(reported)}
    }


def _describe(role: str, evaluation: Evaluation | None) -> list[str]:
    if evaluation is None:
        return [f"{role}: (none given)"]
    failure = evaluation.first_failure()
    rate = f" {evaluation.passes}/{evaluation.runs}" if evaluation.runs > 1 else ""
    if failure is None:
        return [f"{role}: passed{rate}"]
    check, reply = failure
    return [
        f"{role}: passed{rate}; failed check `{check.name}`: {check.message}"
        if rate
        else f"{role}: failed check `{check.name}`: {check.message}",
        f"{role} reply: {excerpt(reply, REPLY_EXCERPT)!r}",
    ]


class PairFile(pytest.File):
    """A ``*.hgd.yaml`` file: one conversation's pairs."""

    def collect(self) -> Iterator[pytest.Item]:
        session: HGDSession = self.config.stash[SESSION_KEY]
        display = self.nodeid or self.path.name
        try:
            conversation = load_conversation(self.path, display, session.registry)
        except PairFileError as exc:
            raise self.CollectError(exc.render()) from None
        rolled_out = (conversation.rollout or session.settings.rollout) and conversation.pairs
        if rolled_out and any(p.id == ROLLOUT for p in conversation.pairs):
            raise self.CollectError(
                f"{display}: pair id {ROLLOUT!r} is reserved for the conversation's rollout item."
                " Hint: rename that pair."
            )
        for pair in conversation.pairs:
            yield PairItem.from_parent(self, name=pair.id, pair=pair)
        if rolled_out:
            yield RolloutItem.from_parent(self, name=ROLLOUT, conversation=conversation)


class GateItem(pytest.Item):
    """What pair and rollout items share: their payload, the session, error and failure."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hgd_payload: dict[str, Any] | None = None
        self.hgd_payload_phase = "call"

    @property
    def session_state(self) -> HGDSession:
        return self.config.stash[SESSION_KEY]

    def _base_payload(self) -> dict[str, Any]:
        raise NotImplementedError

    def fail_with_agent_error(self, role: str, error: str, what: str) -> None:
        """The agent raised or timed out: an error in setup, recorded as delta ``error``."""
        self.hgd_payload = {
            **self._base_payload(),
            "delta": Delta.ERROR.value,
            "baseline": None,
            "candidate": None,
            "error": f"{role}: {error}",
        }
        self.hgd_payload_phase = "setup"
        text = printable(f"agent error {what}under the {role} prompt: {error}")
        pytest.fail(text, pytrace=False)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        # pytest renders the failure before it turns an xfail into an outcome: a traceback
        # there costs ~0.2 s an item (it parses source), for a text nobody reads
        if isinstance(excinfo.value, PairFailed | pytest.xfail.Exception):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)


class PairItem(GateItem):
    """One pair under the baseline and the candidate prompt."""

    def __init__(self, *, pair: Pair, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pair = pair
        self.extra_keyword_matches.update(pair.tags)  # `-k pricing` selects by tag

    def _base_payload(self) -> dict[str, Any]:
        return {
            "id": self.nodeid,
            "kind": self.pair.kind.value,
            "tags": list(self.pair.tags),
            "conversation": self.pair.conversation,
            "pair_hash": self.pair.content_hash(),
            "samples": self.session_state.evaluator.samples(self.pair),
        }

    def setup(self) -> None:
        for status, reason in (
            ("retired", self.pair.retired),
            ("pending_review", self.pair.review),
        ):
            if reason is not None:
                self.hgd_payload = {**self._base_payload(), "status": status, "reason": reason}
                self.hgd_payload_phase = "setup"
                pytest.skip(f"{status.replace('_', ' ')}: {reason}")
        self.evaluations = self.session_state.evaluate(self)
        baseline, candidate = self.evaluations
        error = (baseline.error if baseline else None) or candidate.error
        if error is not None:
            role = "candidate" if candidate.error else "baseline"
            self.fail_with_agent_error(role, error, "")

    def runtest(self) -> None:
        baseline, candidate = self.evaluations
        evaluator = self.session_state.evaluator
        why = evaluator.undecided.get(self.nodeid)
        if why is not None:
            self._undecided(why)
        decision = evaluator.decision(self.nodeid, baseline, candidate)
        delta = decision.delta
        self.hgd_payload = {
            **self._base_payload(),
            "delta": delta.value,
            "baseline": result_payload(baseline, evaluator.confirmations.get(self.nodeid)),
            "candidate": result_payload(candidate),
            "error": None,
        }
        if decision.sampled is not None:
            self.hgd_payload["p_value"] = decision.sampled.p_regress
            self.hgd_payload["p_fix"] = decision.sampled.p_fix
            self.hgd_payload["testable"] = decision.sampled.testable
            if decision.sampled.p_confirm is not None:
                self.hgd_payload["p_confirm"] = decision.sampled.p_confirm
        screen = evaluator.screens.get(self.nodeid)
        if screen is not None:
            self.hgd_payload["screen"] = screen_payload(screen)
            self.hgd_payload["fixed_k"] = evaluator.fixed_k.get(self.nodeid)
        if baseline is not None and baseline.runs > 1:
            self.hgd_payload["flaky"] = flaky(PassCounts(baseline.passes, baseline.runs))
        strict = self.session_state.settings.strict
        if delta == Delta.STILL_FAILING and not strict:
            failure = candidate.first_failure()
            reason = f"{failure[0].name}: {failure[0].message}" if failure else "fails"
            pytest.xfail(f"still_failing under both prompts ({reason})")
        if gate.fails_gate(delta, strict):
            lines = [f"{delta.value}: {self.pair.kind.value} pair {self.nodeid}"]
            lines += _describe("baseline", baseline) + _describe("candidate", candidate)
            if decision.sampled is not None and decision.sampled.p_regress is not None:
                lines.append(
                    f"one-sided exact test: p = {decision.sampled.p_regress:.3g} "
                    f"(significant at the corrected level {decision.sampled.threshold:.3g})"
                )
            raise PairFailed("\n".join(map(printable, lines)))

    def _undecided(self, why: str) -> None:
        """The call budget left the pair short: ``undecided``, which fails the gate unless
        --hgd-allow-undecided (then the item is skipped). What was drawn is in the payload."""
        baseline, candidate = self.evaluations
        self.hgd_payload = {
            **self._base_payload(),
            "delta": Delta.UNDECIDED.value,
            "baseline": result_payload(baseline) if baseline and baseline.runs else None,
            "candidate": result_payload(candidate) if candidate.runs else None,
            "error": None,
            "undecided": why,
        }
        screen = self.session_state.evaluator.screens.get(self.nodeid)
        if screen is not None:
            self.hgd_payload["screen"] = screen_payload(screen)
        if self.session_state.settings.allow_undecided:
            pytest.skip(f"undecided: {why}")
        raise PairFailed(printable(f"undecided: {self.pair.kind.value} pair {self.nodeid}: {why}"))

    def reportinfo(self) -> tuple[Any, int | None, str]:
        line = self.pair.line - 1 if self.pair.line else None
        return self.path, line, f"hgd {self.pair.kind.value} pair {self.name}"


class RolloutItem(GateItem):
    """One conversation replayed with the agent's own replies, under each prompt."""

    def __init__(self, *, conversation: Conversation, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conversation = conversation
        self.extra_keyword_matches.update({"rollout", *conversation.pairs[0].tags})

    def _base_payload(self) -> dict[str, Any]:
        return {
            "id": self.nodeid,
            "rollout": True,
            "conversation": self.conversation.name,
            "tags": list(self.conversation.pairs[0].tags),
        }

    def setup(self) -> None:
        self.results = self.session_state.roll_out(self)
        baseline, candidate = self.results
        failed = next(
            (
                (role, r)
                for role, r in (("baseline", baseline), ("candidate", candidate))
                if r is not None and r.error is not None
            ),
            None,
        )
        if failed is not None:
            role, result = failed
            self.fail_with_agent_error(role, str(result.error), "in the rollout ")

    def runtest(self) -> None:
        baseline, candidate = self.results
        delta = gate.one_shot_delta(baseline.passed if baseline else None, candidate.passed)
        self.hgd_payload = {
            **self._base_payload(),
            "delta": delta.value,
            "baseline": baseline.payload() if baseline else None,
            "candidate": candidate.payload(),
            "error": None,
        }
        strict = self.session_state.settings.strict
        if delta == Delta.STILL_FAILING and not strict:
            pytest.xfail(f"rollout still_failing under both prompts ({_where(candidate)})")
        if gate.fails_gate(delta, strict):
            lines = [f"{delta.value}: rollout of {self.conversation.name} ({self.nodeid})"]
            for role, result in (("baseline", baseline), ("candidate", candidate)):
                if result is not None:
                    lines.append(f"{role}: {'passed' if result.passed else _where(result)}")
            lines.append("candidate transcript:")
            lines += [
                f"  {t.speaker}: {excerpt(t.text, REPLY_EXCERPT)}" for t in candidate.transcript
            ]
            raise PairFailed("\n".join(map(printable, lines)))

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"hgd rollout of {self.conversation.name}"


def _where(result: RolloutResult) -> str:
    turn = f"turn {result.first_failed_turn}" if result.first_failed_turn else "final checks"
    return f"failed at {turn}: {result.failed_check}: {result.message}"


ROLLOUT = "rollout"
