"""--hgd-blame: the prompt change as revertible hunks, the group-testing search, and the
plugin naming, under each regressed pair, the hunks it depends on."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_hgd.core.blame import (
    Culprits,
    Query,
    blame_entries,
    blame_note,
    first_divergence,
    search,
)
from pytest_hgd.core.hunks import revert, split_hunks
from tests.conftest import Gate, conversation

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "car_sales"
PROMPTS = EXAMPLE / "prompts"
HUNK_7 = '"Keep replies under 40 words." → "Customers hang up on long answers: keep replies under 15 words."'


# hunks ---------------------------------------------------------------------------------------
def test_the_examples_regressing_change_splits_into_seven_hunks() -> None:
    baseline = (PROMPTS / "baseline.txt").read_text(encoding="utf-8")
    candidate = (PROMPTS / "candidate_regresses.txt").read_text(encoding="utf-8")
    hunks = split_hunks(baseline, candidate)
    assert [(h.index, h.kind) for h in hunks] == [
        (1, "removed"),
        *((i, "added") for i in range(2, 7)),
        (7, "replaced"),
    ]
    assert hunks[0].label == "- Never quote prices."
    assert hunks[1].label == "+ Quote the starting price from the price list."
    assert hunks[6].label == HUNK_7
    assert revert(candidate, hunks, {7}) == candidate.replace(
        "Customers hang up on long answers: keep replies under 15 words.",
        "Keep replies under 40 words.",
    )


def test_a_changed_line_is_cut_into_its_sentences() -> None:
    baseline = "You are Sam. Never quote prices. Keep replies under 40 words."
    candidate = "You are Sam. Quote the price. Offer a test drive. Keep replies under 15 words."
    hunks = split_hunks(baseline, candidate)
    assert [h.label for h in hunks] == [
        "- Never quote prices.",
        "+ Quote the price.",
        "+ Offer a test drive.",
        '"Keep replies under 40 words." → "Keep replies under 15 words."',
    ]
    assert revert(candidate, hunks, {3}) == (
        "You are Sam. Quote the price. Keep replies under 15 words."
    )


def test_unlike_lines_are_a_removal_and_insertions_and_whitespace_joins_a_neighbour() -> None:
    hunks = split_hunks("a\nNever do X.\nb\n", "a\nTotally new rule here.\nAnother one.\nb\n")
    assert [h.kind for h in hunks] == ["removed", "added", "added"]
    assert split_hunks("same\n", "same\n") == []
    (only,) = split_hunks("One. Two.\n", "One. Two. Three.\n")
    assert only.label == '"Two." → "Two. Three."'


SENTENCES = st.sampled_from(
    ["Be kind.", "Never quote prices.", "Offer a call.", "Be brief!", "x", ""]
)
SEPARATORS = st.sampled_from([" ", "\n", "  ", "\n\n", "\r\n", ""])
TEXTS = st.lists(st.tuples(SENTENCES, SEPARATORS), max_size=10).map(
    lambda parts: "".join(a + b for a, b in parts)
) | st.text(alphabet="ab. \n!", max_size=30)


@settings(max_examples=300, deadline=None)
@given(baseline=TEXTS, candidate=TEXTS, data=st.data())
def test_reverting_all_hunks_gives_the_baseline_and_none_the_candidate(
    baseline: str, candidate: str, data: st.DataObject
) -> None:
    hunks = split_hunks(baseline, candidate)
    indices = [h.index for h in hunks]
    assert indices == list(range(1, len(hunks) + 1))
    assert revert(candidate, hunks, set(indices)) == baseline
    assert revert(candidate, hunks, set()) == candidate
    for hunk in hunks:  # each hunk is where it says, and changes something
        assert candidate[hunk.start : hunk.start + len(hunk.candidate)] == hunk.candidate
        assert hunk.baseline != hunk.candidate
    some = data.draw(st.sets(st.sampled_from(indices))) if indices else set()
    # reverting in two steps is reverting at once: hunks do not interfere
    assert revert(revert(candidate, hunks, some), _moved(hunks, some), set(indices) - some) == (
        baseline
    )


def _moved(hunks: Sequence[Any], reverted: set[int]) -> list[Any]:
    """The hunks as they sit in the partly reverted text (the reverted ones now empty)."""
    from pytest_hgd.core.hunks import Hunk

    moved, shift = [], 0
    for h in hunks:
        if h.index in reverted:
            moved.append(Hunk(h.index, "", "", h.start + shift))
            shift += len(h.baseline) - len(h.candidate)
        else:
            moved.append(Hunk(h.index, h.baseline, h.candidate, h.start + shift))
    return moved


# the search ----------------------------------------------------------------------------------
class Causes:
    """A monotone oracle: a pair passes when the reverted set covers one of its causes."""

    def __init__(self, causes: Mapping[str, Sequence[frozenset[int]]]) -> None:
        self.causes = causes
        self.asked: list[Query] = []

    def __call__(self, queries: Sequence[Query]) -> dict[Query, bool | None]:
        self.asked += queries
        return {(p, r): any(c <= r for c in self.causes[p]) for p, r in queries}


def test_one_culprit_among_twenty_hunks_costs_fewer_queries_than_trying_each() -> None:
    oracle = Causes({"p": [frozenset({13})]})
    assert search(["p"], range(1, 21), oracle) == {"p": Culprits((13,))}
    # two halvings, the singles of five, and whether the other 19 hold a joint cause
    assert len(oracle.asked) == 2 + 2 + 5 + 1
    assert len(oracle.asked) < 20


def test_a_joint_cause_is_found_and_shrunk_to_its_hunks() -> None:
    oracle = Causes({"p": [frozenset({2, 5})], "q": [frozenset({4}), frozenset({1, 3})]})
    found = search(["p", "q"], range(1, 7), oracle)
    assert found["p"] == Culprits((), ((2, 5),))
    assert found["q"] == Culprits((4,), ((1, 3),))


@settings(max_examples=200, deadline=None)
@given(
    count=st.integers(1, 24),
    causes=st.lists(st.sets(st.integers(1, 24), min_size=1, max_size=3), min_size=1, max_size=3),
)
def test_the_search_finds_every_single_culprit_and_only_minimal_joint_causes(
    count: int, causes: list[set[int]]
) -> None:
    kept = [frozenset(c) for c in causes if max(c) <= count] or [frozenset(range(1, count + 1))]
    minimal = [c for c in kept if not any(o < c for o in kept)]
    found = search(["p"], range(1, count + 1), Causes({"p": minimal}))["p"]
    assert set(found.hunks) == {next(iter(c)) for c in minimal if len(c) == 1}
    for group in found.together:
        assert frozenset(group) in minimal and len(group) > 1
    assert found.hunks or found.together
    rest = frozenset(range(1, count + 1)) - set(found.hunks)
    assert bool(found.together) == any(c <= rest for c in minimal)  # a joint cause, if any
    assert found.complete


def test_unknown_answers_cut_the_search_short_and_say_so() -> None:
    def spent(queries: Sequence[Query]) -> dict[Query, bool | None]:
        return {query: None for query in queries}

    found = search(["p"], range(1, 5), spent)["p"]
    assert found == Culprits((), (), complete=False)
    assert blame_note(found) == (
        "not explained: reverting hunks was not seen to make it pass; "
        "blame cut short (an agent error or the --hgd-max-calls budget)"
    )
    hunks = split_hunks("Be nice.\n", "Be kind.\n")
    assert blame_entries(Culprits((1,)), hunks) == {
        "blame": [
            {
                "hunk": 1,
                "text": '"Be nice." → "Be kind."',
                "baseline": "Be nice.\n",
                "candidate": "Be kind.\n",
            }
        ]
    }


def test_the_first_differing_reply_of_two_rollouts() -> None:
    def transcript(*replies: str) -> list[dict[str, str]]:
        turns = [{"speaker": "agent", "text": "Hello"}]
        for n, reply in enumerate(replies):
            turns += [{"speaker": "customer", "text": f"c{n}"}, {"speaker": "agent", "text": reply}]
        return turns

    same = transcript("a", "b")
    assert first_divergence(same, same) is None
    assert first_divergence(same, transcript("a", "B")) == {
        "turn": 2,
        "baseline": "b",
        "candidate": "B",
    }
    short = [*transcript("a"), {"speaker": "customer", "text": "c1"}]  # the agent failed there
    assert first_divergence(same, short) == {"turn": 2, "baseline": "b", "candidate": None}


# the plugin ----------------------------------------------------------------------------------
def copy_example(hgd: Gate) -> None:
    for entry in ("agent.py", "pytest.ini", "pairs", "prompts"):
        source = EXAMPLE / entry
        if source.is_dir():
            shutil.copytree(source, hgd.path / entry)
        else:
            shutil.copy(source, hgd.path / entry)
    (hgd.path / "hgd_agent.py").unlink()


def regressing(hgd: Gate, *args: str) -> pytest.RunResult:
    return hgd.run(
        "--hgd-baseline=prompts/baseline.txt",
        "--hgd-candidate=prompts/candidate_regresses.txt",
        "--hgd-report=report.json",
        "--hgd-markdown=summary.md",
        *args,
    )


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
def test_blame_names_the_hunks_each_regressed_pair_of_the_example_depends_on(
    hgd: Gate, xdist: bool
) -> None:
    if xdist:
        pytest.importorskip("xdist")
    copy_example(hgd)
    result = regressing(hgd, *(("-p", "xdist", "-n", "2") if xdist else ()))
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "hgd: blame: 7 hunks, 11 regressed pairs, * variant prompts, * agent calls*",
            "*regressed  pairs/call-1002.hgd.yaml::metro-price",
            "*contains: missing 'sales rep'*",
            f"*blame: hunk 7 {HUNK_7}",
            "*hunk 1 - Never quote prices. (together with hunk 2)",
            "*hunk 2 + Quote the starting price from the price list. (together with hunk 1)",
            "*regressed  pairs/call-1004.hgd.yaml::trade-in",
            "*contains: missing 'sales rep'*",
            "*blame: hunk 4 + Offer a free trade-in appraisal.",
            f"*hunk 7 {HUNK_7}",
            "*regressed  pairs/call-1004.hgd.yaml::rollout: fails at turn 1*",
            "*first reply that differs from the baseline's rollout: turn 1: 'Hi, this is Sam from"
            " Acme Motors. Would you like a sales rep to call you back?' → 'Hi, this is Sam from"
            " Acme Motors.'",
            "verdict: FAIL (11 regressed; 5 rollout regressed)",
        ]
    )
    report = hgd.report()
    blamed = {p["id"]: p["blame"] for p in report["pairs"] if "blame" in p}
    regressed = {p["id"] for p in report["pairs"] if p["delta"] == "regressed"}
    assert set(blamed) == regressed and len(regressed) == 11
    assert all(7 in {e["hunk"] for e in entries} for entries in blamed.values())
    assert [(e["hunk"], e.get("together_with")) for e in blamed[_id("1002", "metro-price")]] == [
        (7, None),
        (1, [2]),
        (2, [1]),
    ]
    assert [e["hunk"] for e in blamed[_id("1004", "trade-in")]] == [4, 7]
    assert blamed[_id("1004", "trade-in")][0] == {
        "hunk": 4,
        "text": "+ Offer a free trade-in appraisal.",
        "baseline": "",
        "candidate": "Offer a free trade-in appraisal.\n",
    }
    assert not any("blame_note" in p for p in report["pairs"])
    # call-1001 fails at turn 2, but its first reply already differs
    assert {r["id"]: r["diverged"]["turn"] for r in report["rollouts"]} == {
        f"pairs/call-100{n}.hgd.yaml::rollout": 1 for n in range(1, 6)
    }
    markdown = (hgd.path / "summary.md").read_text(encoding="utf-8")
    assert "### Which hunk of the change broke which pair" in markdown
    assert "- pairs/call-1004.hgd.yaml::trade-in: hunk 4 + Offer a free trade-in appraisal.;" in (
        markdown.replace("\\", "")
    )


def _id(call: str, pair: str) -> str:
    return f"pairs/call-{call}.hgd.yaml::{pair}"


def test_no_blame_turns_it_off(hgd: Gate) -> None:
    copy_example(hgd)
    result = regressing(hgd, "--hgd-no-blame")
    assert result.ret == 1
    assert "blame:" not in result.stdout.str()
    assert "first reply that differs" not in result.stdout.str()
    report = hgd.report()
    assert not any("blame" in p for p in report["pairs"])
    assert not any("diverged" in r for r in report["rollouts"])
    assert "Which hunk" not in (hgd.path / "summary.md").read_text(encoding="utf-8")


def test_a_passing_candidate_is_not_blamed(hgd: Gate) -> None:
    copy_example(hgd)
    result = hgd.run(
        "--hgd-baseline=prompts/baseline.txt", "--hgd-candidate=prompts/candidate_fixes.txt"
    )
    assert result.ret == 0
    assert "blame:" not in result.stdout.str()


# A synthetic agent: its reply is its prompt, so a pair's checks read which lines it holds.
ECHO = "def reply(prompt, messages):\n    return prompt\n"


def echo_gate(hgd: Gate, baseline: list[str], candidate: list[str]) -> None:
    hgd.pytester.makepyfile(echo_agent=ECHO)
    hgd.pytester.makeini("[pytest]\nhgd_agent = echo_agent:reply\n")
    (hgd.path / "base.txt").write_text("\n".join(baseline) + "\n", encoding="utf-8")
    (hgd.path / "cand.txt").write_text("\n".join(candidate) + "\n", encoding="utf-8")
    hgd.pairs(
        "call.hgd.yaml",
        conversation(
            {"id": "rep", "customer": "hi", "checks": [{"contains": "sales rep"}]},
            {"id": "promise", "customer": "hello", "checks": [{"not_contains": "guarantee"}]},
            {"id": "deal", "customer": "hey", "checks": [{"not_contains": ["discount", "free"]}]},
        ),
    )


def run_echo(hgd: Gate, *args: str) -> pytest.RunResult:
    return hgd.run(
        "--hgd-baseline=base.txt", "--hgd-candidate=cand.txt", "--hgd-report=r.json", *args
    )


def blame_of(report: Mapping[str, Any]) -> dict[str, Any]:
    """Each pair's ``blame`` (None when it has none), by pair id."""
    return {p["id"].rpartition("::")[2]: p.get("blame") for p in report["pairs"]}


def test_group_testing_over_many_hunks_and_a_cause_that_needs_two(hgd: Gate) -> None:
    rules = [f"Rule {n}: be nice in way number {n}." for n in range(12)]
    candidate = [r.replace("nice", "kind") if n % 2 else r for n, r in enumerate(rules)]
    candidate[3:3] = ["We guarantee it."]
    candidate[7:7] = ["A discount!"]
    candidate[11:11] = ["It is free."]
    echo_gate(hgd, [*rules, "Offer a call from a sales rep."], [*candidate, "Offer a call."])
    result = run_echo(hgd)
    assert result.ret == 1
    hunks = {
        e["text"]: e["hunk"] for p in hgd.report("r.json")["pairs"] for e in p.get("blame") or []
    }
    # 6 rules reworded, 3 lines added, the sales rep dropped: 10 hunks, tried by halves
    result.stdout.fnmatch_lines(["hgd: blame: 10 hunks, 3 regressed pairs, *"])
    rep = hunks['"Offer a call from a sales rep." → "Offer a call."']
    promise, discount, free = (
        hunks["+ We guarantee it."],
        hunks["+ A discount!"],
        hunks["+ It is free."],
    )
    assert rep == 10 and promise < discount < free
    blame = blame_of(hgd.report("r.json"))
    assert [(e["hunk"], e.get("together_with")) for e in blame["rep"]] == [(rep, None)]
    assert [(e["hunk"], e.get("together_with")) for e in blame["promise"]] == [(promise, None)]
    assert [(e["hunk"], e.get("together_with")) for e in blame["deal"]] == [
        (discount, [free]),
        (free, [discount]),
    ]
    result.stdout.fnmatch_lines(
        [
            "*regressed  *call.hgd.yaml::deal",
            f"*blame: hunk {discount} + A discount! (together with hunk {free})",
            f"*hunk {free} + It is free. (together with hunk {discount})",
        ]
    )


def test_a_change_of_many_hunks_is_blamed_only_when_asked(hgd: Gate) -> None:
    lines = [f"Line {n} says something." for n in range(50)]
    changed = [f"{line} We guarantee it." if n % 2 else line for n, line in enumerate(lines)]
    echo_gate(hgd, lines, changed)
    result = run_echo(hgd)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["hgd: blame: off by default for a change of 25 hunks*"])
    assert blame_of(hgd.report("r.json"))["promise"] is None
    result = run_echo(hgd, "--hgd-blame")
    result.stdout.fnmatch_lines(
        [
            "hgd: blame: 25 hunks, 1 regressed pairs, *",
            "*blame: hunks 1, 2, 3, *, 25: only all of them reverted together",
        ]
    )
    entries = blame_of(hgd.report("r.json"))["promise"]
    assert [e["hunk"] for e in entries] == list(range(1, 26))  # every one adds "guarantee"
    assert all(len(e["together_with"]) == 24 for e in entries)


def test_blame_keeps_to_the_call_budget(hgd: Gate) -> None:
    echo_gate(hgd, ["Offer a call from a sales rep.", "Be nice."], ["Offer a call.", "Be nice!"])
    result = run_echo(hgd, "--hgd-max-calls=6")  # the gate's 3 pairs x 2 prompts, none left
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "hgd: blame: 2 hunks, 1 regressed pairs, 2 variant prompts, 0 agent calls*cut short*",
            "*blame: not explained*; blame cut short*",
        ]
    )
    (pair,) = [p for p in hgd.report("r.json")["pairs"] if p["delta"] == "regressed"]
    assert pair["blame"] == []
    assert "cut short" in pair["blame_note"]
    result = run_echo(hgd, "--hgd-max-calls=2")  # the gate's replies are cached now
    result.stdout.fnmatch_lines(
        ["hgd: blame: 2 hunks, 1 regressed pairs, 2 variant prompts, 2 agent calls*"]
    )
    assert "cut short" not in result.stdout.str()


def test_blame_without_a_baseline_says_it_needs_one(hgd: Gate) -> None:
    echo_gate(hgd, ["Offer a call from a sales rep."], ["Offer a call."])
    result = hgd.run("--hgd-candidate=cand.txt", "--hgd-blame")
    assert result.ret == 1  # `rep` fails: new_fail
    result.stdout.fnmatch_lines(["hgd: blame: needs a baseline (--hgd-baseline) to compare with"])
