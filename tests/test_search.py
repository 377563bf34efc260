"""Candidate search (``--hgd-search``): the rules, and the search run as users run it."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import shlex
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_hgd.core.search import (
    SearchPolicy,
    acceptable,
    better,
    parse_policy,
    score,
    split_holdout,
    stratified_p,
)
from pytest_hgd.core.stats import PassCounts, fisher_one_sided_greater
from pytest_hgd.storage.search_out import read_log

# A prompt is lines "Say WORD."; the reply is the words said, in order, then the question.
AGENT = """
def reply(prompt, messages):
    words = [line.split()[-1].strip(".").lower() for line in prompt.splitlines()
             if line.startswith("Say ")]
    with open("calls.log", "a") as log:
        log.write("call\\n")
    return " ".join(words) + " / " + messages[-1]["content"]
"""
START = "Say hello.\nSay block.\nSay keep.\n"

# Proposes the prompt with one "Say" line dropped, each in turn (what a person would try),
# and records what it was shown.
PROPOSER = """
import json, pytest

@pytest.hookimpl(optionalhook=True)
def pytest_hgd_propose(config, prompt, failures, rng, n):
    with open("shown.jsonl", "a") as shown:
        shown.write(json.dumps(failures) + "\\n")
    lines = prompt.splitlines(keepends=True)
    order = list(range(len(lines)))
    rng.shuffle(order)
    return ["".join(l for j, l in enumerate(lines) if j != i) for i in order][:n]
"""


def _valley(pytester: pytest.Pytester, files: int = 10, proposer: str = PROPOSER) -> None:
    """Each file: two locked pairs (one needs "block"), two corrected ones that must not
    say "block". Dropping "Say block." regresses one locked pair a file and fixes two."""
    pytester.makepyfile(valley_agent=AGENT)
    pytester.makeini("[pytest]\nhgd_agent = valley_agent:reply\nhgd_prompt = start.txt\n")
    pytester.makeconftest(proposer)
    (pytester.path / "start.txt").write_text(START)
    for i in range(files):
        pairs = [
            {"id": "greets", "customer": f"hi {i}", "checks": [{"contains": ["hello", "keep"]}]},
            {"id": "blocks", "customer": f"and? {i}", "checks": [{"contains": "block"}]},
            *(
                {"id": f"fix{j}", "kind": "corrected", "customer": f"q{j} {i}",
                 "checks": [{"contains": "hello"}, {"not_contains": "block"}]}
                for j in range(2)
            ),
        ]  # fmt: skip
        document = {"outcome": "lead", "pairs": pairs}
        (pytester.path / f"conv{i:02}.hgd.yaml").write_text(yaml.safe_dump(document))


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("--hgd", "-p", "no:cacheprovider", "--hgd-report=report.json", *args)


def _report(pytester: pytest.Pytester) -> dict[str, Any]:
    from pytest_hgd.reports.report import validate

    data: dict[str, Any] = json.loads((pytester.path / "report.json").read_text())
    validate(data)
    return data


# the rules --------------------------------------------------------------------------------
def test_policies_parse_and_refuse_nonsense() -> None:
    assert parse_policy("strict") == SearchPolicy()
    assert parse_policy(" Budget:3 ") == SearchPolicy(3)
    assert parse_policy("budget:0").name == "budget:0"
    for bad in ("lenient", "budget:", "budget:-1", "budget:x", ""):
        with pytest.raises(ValueError):
            parse_policy(bad)


def test_the_holdout_is_whole_files_seeded_and_never_everything() -> None:
    files = [f"f{i}.hgd.yaml" for i in range(10)]
    held = split_holdout(files * 3, 0.2, seed=1)  # a file's pairs: one file
    assert len(held) == 2 and held <= set(files)
    assert split_holdout(files, 0.2, seed=1) == held
    assert any(split_holdout(files, 0.2, seed=s) != held for s in range(2, 6))
    assert split_holdout(files, 0.0, seed=1) == frozenset()
    assert split_holdout(files[:1], 0.5, seed=1) == frozenset()  # one file: nothing to hold
    assert len(split_holdout(files[:2], 0.9, seed=1)) == 1  # never every file
    assert len(split_holdout(files, 0.01, seed=1)) == 1  # at least one when asked


def _score(passing: dict[str, bool], reference: dict[str, bool], locked: set[str]) -> Any:
    counts = {p: PassCounts(int(ok), 1) for p, ok in passing.items()}
    ref = {p: PassCounts(int(ok), 1) for p, ok in reference.items()}
    return score(counts, ref, locked, 0.05, sampled=False)


def test_strict_refuses_a_locked_regression_and_budget_trades_it_for_a_net_gain() -> None:
    reference = {"l1": True, "l2": True, "c1": False, "c2": False}
    start = _score(reference, reference, {"l1", "l2"})
    trade = _score({"l1": True, "l2": False, "c1": True, "c2": True}, reference, {"l1", "l2"})
    assert (trade.passed, trade.locked_regressed) == (3, 1)
    assert not acceptable(trade, start, SearchPolicy(), sampled=False, level=0.05)
    assert acceptable(trade, start, SearchPolicy(1), sampled=False, level=0.05)
    assert not acceptable(trade, start, SearchPolicy(0), sampled=False, level=0.05)
    even = _score({"l1": True, "l2": False, "c1": True, "c2": False}, reference, {"l1", "l2"})
    assert not acceptable(even, start, SearchPolicy(5), sampled=False, level=0.05)  # no gain
    broken = score({"l1": None, "l2": PassCounts(1, 1)}, {"l1": PassCounts(1, 1)},
                   {"l1"}, 0.05, sampled=False)  # fmt: skip
    assert broken.errors == 1
    assert not acceptable(broken, start, SearchPolicy(5), sampled=False, level=0.05)


def test_with_samples_a_budget_gain_must_be_beyond_the_noise() -> None:
    def scored(counts: dict[str, tuple[int, int]]) -> Any:
        table = {p: PassCounts(*c) for p, c in counts.items()}
        return score(table, table, set(), 0.05, sampled=True)

    ref = {"c0": (0, 10), "c1": (0, 10), "c2": (0, 10), "n0": (4, 10), "n1": (4, 10)}
    start = scored(ref)
    noise = scored({**ref, "n0": (6, 10), "n1": (6, 10)})  # mostly passing now, by chance
    assert noise.passed > start.passed
    assert not acceptable(noise, start, SearchPolicy(0), sampled=True, level=0.01)
    sure = scored({**ref, "c0": (10, 10), "c1": (10, 10), "c2": (10, 10)})
    assert acceptable(sure, start, SearchPolicy(0), sampled=True, level=0.01)
    # three sure fixes and two lucky ones, against three sure losses: no real net gain
    ref2 = {**ref, "l0": (10, 10), "l1": (10, 10), "l2": (10, 10)}
    fell = {"l0": (0, 10), "l1": (0, 10), "l2": (0, 10), "n0": (6, 10), "n1": (6, 10)}
    trade = scored({**ref2, "c0": (10, 10), "c1": (10, 10), "c2": (10, 10), **fell})
    start2 = scored(ref2)
    assert trade.passed > start2.passed
    assert not acceptable(trade, start2, SearchPolicy(5), sampled=True, level=0.01)


@given(
    st.lists(
        st.tuples(st.integers(1, 4), st.integers(1, 4)).flatmap(
            lambda runs: st.tuples(
                st.integers(0, runs[0]),
                st.just(runs[0]),
                st.integers(0, runs[1]),
                st.just(runs[1]),
            )
        ),
        min_size=1,
        max_size=3,
    )
)
@settings(max_examples=60, deadline=None)
def test_the_stratified_p_value_is_the_exact_tail(tables: list[tuple[int, int, int, int]]) -> None:
    """Brute force: every way the pairs' passes could split between the prompts, weighted
    by its hypergeometric chance given each pair's margins."""
    counts = [(PassCounts(c, cr), PassCounts(b, br)) for c, cr, b, br in tables]
    observed = sum(c for c, _, _, _ in tables)
    laws = []
    for c, cr, b, br in tables:
        n, t = cr + br, c + b
        laws.append({x: math.comb(cr, x) * math.comb(br, t - x) / math.comb(n, t)
                     for x in range(max(0, t - br), min(t, cr) + 1)})  # fmt: skip
    tail = sum(
        math.prod(law[x] for law, x in zip(laws, xs, strict=True))
        for xs in itertools.product(*(list(law) for law in laws))
        if sum(xs) >= observed
    )
    assert stratified_p(counts) == pytest.approx(tail, abs=1e-12)
    if len(tables) == 1:
        assert stratified_p(counts) == pytest.approx(fisher_one_sided_greater(*counts[0]))


def test_ties_go_to_the_shorter_prompt() -> None:
    def scored(passed: int, locked_regressed: int = 0) -> Any:
        reference = {f"p{i}": True for i in range(6)}
        results = {f"p{i}": i < passed for i in range(6)}
        locked = {f"p{i}" for i in range(5, 5 - locked_regressed, -1)}
        for pid in locked:
            results[pid] = False
        return _score(results, reference, locked)

    assert better(scored(5), "abc", scored(4), "a")
    assert better(scored(4), "ab", scored(4), "abc")
    assert not better(scored(4), "abc", scored(4), "abc")
    assert not better(scored(3), "a", scored(4), "abcdef")
    fewer_lost = scored(3, locked_regressed=0)
    assert better(fewer_lost, "abcdef", scored(3, locked_regressed=1), "a")


# the search, as users run it -------------------------------------------------------------
def test_strict_keeps_every_locked_pair_and_stays_put(pytester: pytest.Pytester) -> None:
    _valley(pytester)
    result = _run(pytester, "--hgd-search=6")
    search = _report(pytester)["search"]
    assert search["policy"] == "strict" and search["evaluated"] == 6  # the conftest's and mutants
    assert search["best_is_start"] and search["best"] == search["start"]
    assert search["start"]["train"] == {"passed": 16, "total": 32}
    assert search["start"]["holdout"] == {"passed": 4, "total": 8}
    assert (pytester.path / ".hgd/search/best.txt").read_text() == START
    log = read_log(pytester.path / ".hgd/search/log.jsonl")
    assert [e["index"] for e in log] == [0, 1, 2, 3, 4, 5, 6]
    assert all(not e["acceptable"] for e in log[1:])
    result.stdout.fnmatch_lines(
        [
            "search (strict): 6 candidates evaluated*",
            "  start  16/32 (50%)    4/8 (50%)      0 / 0",
            "  best   16/32 (50%)    4/8 (50%)      0 / 0",
            "*kept the start prompt: none of 6 candidates met the strict policy*",
        ]
    )


def test_a_budget_escapes_the_valley_and_wins_on_held_out_files(
    pytester: pytest.Pytester,
) -> None:
    _valley(pytester)
    result = _run(pytester, "--hgd-search=6", "--hgd-search-policy=budget:10",
                  "--hgd-markdown=summary.md", "--hgd-html=report.html")  # fmt: skip
    report = _report(pytester)
    search = report["search"]
    assert not search["best_is_start"]
    assert search["best"]["train"] == {"passed": 24, "total": 32}
    assert search["best"]["holdout"] == {"passed": 6, "total": 8}
    assert search["best"]["locked_regressed"] == 8
    assert search["best"]["holdout_locked_regressed"] == 2
    best = (pytester.path / ".hgd/search/best.txt").read_text()
    assert best == "Say hello.\nSay keep.\n"
    assert "-Say block." in search["best_prompt"]["diff"]
    result.stdout.fnmatch_lines(
        [
            "search (budget:10): 6 candidates evaluated*",
            "  best   24/32 (75%)    6/8 (75%)      8 / 2",
            "*on the held-out files it passes 2 more (it generalises), and it regresses 2 locked"
            " pairs there, which the search never saw*",
            "    -Say block.",
            "  gate it: pytest --hgd -p no:cacheprovider --hgd-report=report.json *"
            " --hgd-candidate=.hgd/search/best.txt --hgd-baseline=start.txt",
            "next: gate the search's best prompt: pytest --hgd *"
            " --hgd-candidate=.hgd/search/best.txt --hgd-baseline=start.txt",
        ]
    )
    assert len(search["holdout_files"]) == 2
    shown = [json.loads(line) for line in (pytester.path / "shown.jsonl").read_text().splitlines()]
    ids = {f["id"] for round_ in shown for f in round_}
    assert ids and not any(i.split("::")[0] in search["holdout_files"] for i in ids)
    first = shown[0][0]
    assert set(first) >= {"id", "kind", "messages", "reply", "recorded", "problems"}
    assert first["kind"] == "corrected" and first["messages"][-1]["role"] == "user"
    assert any("block" in problem for problem in first["problems"])
    markdown = (pytester.path / "summary.md").read_text()
    assert "### Candidate search (budget:10)" in markdown and "-Say block." in markdown
    html = (pytester.path / "report.html").read_text()
    assert 'id="search"' in html and 'class="curve-holdout"' in html
    # the command it prints gates the best prompt: the traded locked pairs show as regressed
    assert "--hgd-search" not in search["command"] and "--hgd-markdown" in search["command"]
    gated = pytester.runpytest(*shlex.split(search["command"])[1:])
    gated.assert_outcomes(passed=30, failed=10)  # the 10 "blocks" pairs regressed


def test_a_budget_too_small_for_the_trade_stays_put(pytester: pytest.Pytester) -> None:
    _valley(pytester)
    _run(pytester, "--hgd-search=6", "--hgd-search-policy=budget:7")
    assert _report(pytester)["search"]["best_is_start"]


def test_with_samples_the_search_decides_as_the_sampled_gate(pytester: pytest.Pytester) -> None:
    _valley(pytester, files=6)
    _run(pytester, "--hgd-search=6", "--hgd-search-policy=budget:6", "--hgd-samples=10")
    search = _report(pytester)["search"]
    assert search["best"]["train"]["passed"] > search["start"]["train"]["passed"]
    assert search["best"]["locked_regressed"] == 5  # 10/10 -> 0/10: significant


def test_the_search_stops_at_n_and_at_the_call_budget(pytester: pytest.Pytester) -> None:
    _valley(pytester)
    _run(pytester, "--hgd-search=1")
    assert _report(pytester)["search"]["evaluated"] == 1
    assert len(read_log(pytester.path / ".hgd/search/log.jsonl")) == 2
    (pytester.path / "calls.log").unlink()
    result = _run(pytester, "--hgd-search=6", "--hgd-no-cache", "--hgd-max-calls=60")
    search = _report(pytester)["search"]
    made = len((pytester.path / "calls.log").read_text().splitlines())
    assert made == 60  # 40 by the gate, 20 by the search: what it reports
    assert search["calls"] == 20
    assert any("--hgd-max-calls budget ran out" in note for note in search["notes"])
    result.stdout.fnmatch_lines(["*--hgd-max-calls=60: 60 spent, 0 left*"])
    log = read_log(pytester.path / ".hgd/search/log.jsonl")
    unpaid = [e for e in log if e["unchecked"]]
    assert unpaid and not any(e["dropped_early"] for e in unpaid)
    complete = [e for e in log[1:] if not e["dropped_early"] and not e["unchecked"]]
    probe = _report(pytester)["pressure"]["probe"] or {}  # only complete candidates count
    assert probe.get("search", {"candidates": 0})["candidates"] == len(complete)


def test_an_unusable_output_directory_leaves_the_gate_as_it_was(
    pytester: pytest.Pytester,
) -> None:
    _valley(pytester, files=2)
    (pytester.path / "taken").write_text("a file, not a directory")
    result = _run(pytester, "--hgd-search=3", "--hgd-search-out=taken/search")
    result.assert_outcomes(passed=4, failed=4)  # the gate's own outcome, no traceback
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "search" not in _report(pytester)
    result.stdout.fnmatch_lines(["hgd: search stopped: cannot write to *taken/search: *"])


def test_the_gate_command_keeps_the_runs_own_arguments(pytester: pytest.Pytester) -> None:
    _valley(pytester, files=5)
    suite = pytester.path / "suite"
    suite.mkdir()
    for path in pytester.path.glob("*.hgd.yaml"):
        path.rename(suite / path.name)
    result = _run(pytester, "suite", "--hgd-search", "6", "--hgd-search-policy=budget:10",
                  "--hgd-samples=10")  # fmt: skip
    command = _report(pytester)["search"]["command"]
    assert shlex.split(command)[:2] == ["pytest", "--hgd"]
    assert "suite" in shlex.split(command) and "--hgd-samples=10" in command
    assert "--hgd-search" not in command and "6" not in shlex.split(command)
    gated = pytester.runpytest(*shlex.split(command)[1:])
    gated.assert_outcomes(passed=15, failed=5)  # 5 "blocks" pairs regressed
    del result


def test_the_search_options_are_left_out_of_the_gate_command() -> None:
    from pytest_hgd.plugin.advice import SEARCH_ONLY, without_options
    from pytest_hgd.plugin.explore import REPLACED

    args = ["suite", "--hgd", "--hgd-search", "6", "--hgd-holdout=0.3", "--lf", "-x",
            "--hgd-candidate", "p.txt", "--hgd-samples", "3", "--hgd-search-out=o"]  # fmt: skip
    assert without_options(args, SEARCH_ONLY + REPLACED) == ["suite", "-x", "--hgd-samples", "3"]


def test_prompts_that_differ_only_in_whitespace_are_asked_once(
    pytester: pytest.Pytester,
) -> None:
    _valley(pytester, files=2, proposer="""
import pytest

@pytest.hookimpl(optionalhook=True)
def pytest_hgd_propose(prompt, n):
    return [prompt.rstrip("\\n"), prompt + "\\n\\n", prompt.replace("\\n", "  \\n")]
""")  # fmt: skip
    _run(pytester, "--hgd-search=3", "--noconftest")
    _run(pytester, "--hgd-search=3")
    log = read_log(pytester.path / ".hgd/search/log.jsonl")
    assert {e["proposer"] for e in log} == {"start", "mutators"}


def test_the_ledger_and_pressure_count_the_search(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    _valley(pytester)
    _run(pytester, "--hgd-search=6")
    report = _report(pytester)
    complete = [e for e in read_log(pytester.path / ".hgd/search/log.jsonl")[1:]
                if not e["dropped_early"]]  # fmt: skip
    assert report["pressure"]["probe"]["search"] == {"passed": 0, "candidates": len(complete)}
    assert complete  # the drops of "Say block." and "Say keep." fix pairs: asked every pair
    record = json.loads((pytester.path / ".hgd/ledger.jsonl").read_text().splitlines()[-1])
    assert record["search"]["evaluated"] == 6 and record["search"]["policy"] == "strict"
    assert len(record["search"]["best_sha256"]) == 64
    from pytest_hgd.cli import main

    assert (
        main(["stats", str(pytester.path), "--ledger", str(pytester.path / ".hgd/ledger.jsonl")])
        == 0
    )
    calls = report["search"]["calls"]
    assert f"  candidate searches (--hgd-search) made {calls} more" in capsys.readouterr().out


def test_every_proposer_is_pooled_and_one_that_raises_is_a_note(
    pytester: pytest.Pytester,
) -> None:
    _valley(pytester, files=4)
    pytester.syspathinsert()
    pytester.makepyfile(
        other_proposer="""
import pytest
@pytest.hookimpl(optionalhook=True)
def pytest_hgd_propose(config, prompt, n):
    return [prompt + "Say more.\\n"]

class Broken:
    @pytest.hookimpl(optionalhook=True)
    def pytest_hgd_propose(self, prompt):
        raise RuntimeError("no ideas")

class Careless:
    calls = 0
    @pytest.hookimpl(optionalhook=True)
    def pytest_hgd_propose(self, prompt):
        Careless.calls += 1
        return prompt + "Say oops.\\n"  # a string, not a list of them

def pytest_configure(config):
    config.pluginmanager.register(Broken(), "broken-proposer")
    config.pluginmanager.register(Careless(), "careless-proposer")
"""
    )
    result = _run(pytester, "-p", "other_proposer", "--hgd-search=8")
    log = read_log(pytester.path / ".hgd/search/log.jsonl")
    proposers = {e["proposer"] for e in log}
    assert {"start", "conftest.py", "other_proposer", "mutators"} <= proposers
    assert "careless-proposer" not in proposers
    result.stdout.fnmatch_lines(
        [
            "  note: proposer careless-proposer answered str: pytest_hgd_propose returns a list*",
            "  note: proposer broken-proposer raised RuntimeError: no ideas (at *other_proposer.py:9);"
            " not asked again",
        ]
    )
    notes = _report(pytester)["search"]["notes"]
    assert sum("broken-proposer" in note for note in notes) == 1


def test_ctrl_c_during_the_search_leaves_best_and_log_whole(pytester: pytest.Pytester) -> None:
    _valley(pytester, proposer=PROPOSER.replace(
        "    with open(", "    if len(failures) < 16:\n        raise KeyboardInterrupt\n"
        "    with open(", 1))  # fmt: skip
    result = pytester.runpytest_subprocess(
        "--hgd", "-p", "no:cacheprovider", "--hgd-search=10", "--hgd-search-policy=budget:10",
        "--hgd-report=report.json",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.INTERRUPTED
    search = _report(pytester)["search"]  # the gate was decided: its report is written
    assert search["interrupted"] and "interrupted after 5 candidates" in search["notes"]
    log = read_log(pytester.path / ".hgd/search/log.jsonl")  # every line parses
    best = [e for e in log if e["best"]][-1]
    text = (pytester.path / ".hgd/search/best.txt").read_text()
    assert hashlib.sha256(text.encode()).hexdigest() == best["sha256"]
    assert text == "Say hello.\nSay keep.\n"  # found in round 1; round 2 was interrupted
    assert not list((pytester.path / ".hgd/search").glob(".*tmp"))


def test_bad_search_options_are_usage_errors(pytester: pytest.Pytester) -> None:
    _valley(pytester, files=2)
    for option, expected in (
        ("--hgd-search-policy=lenient", "*--hgd-search-policy='lenient': expected strict or budget:R*"),
        ("--hgd-holdout=1", "*--hgd-holdout='1': expected a number in [[]0, 1)*"),
        ("--hgd-search=-2", "*--hgd-search='-2': expected a whole number >= 0*"),
    ):  # fmt: skip
        result = _run(pytester, "--hgd-search=2", option)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([expected])


def test_a_partial_run_does_not_search(pytester: pytest.Pytester) -> None:
    _valley(pytester, files=3)
    result = _run(pytester, "--hgd-search=3", "-k", "greets")
    assert "search" not in _report(pytester)
    result.stdout.fnmatch_lines(["*search skipped: the run left pairs out*"])


def test_the_llm_proposer_is_asked_on_a_loopback_server(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from openai_server import Fault, OpenAIServer

    _valley(pytester, proposer="")
    secret = "sk-proposer-secret-0123456789"
    monkeypatch.setenv("PROPOSER_KEY", secret)
    with OpenAIServer() as srv:
        pytester.makeini(
            "[pytest]\nhgd_agent = valley_agent:reply\nhgd_prompt = start.txt\n"
            f"hgd_proposer = openai:rewriter\nhgd_proposer_base_url = {srv.base_url}\n"
            "hgd_proposer_api_key_env = PROPOSER_KEY\n"
        )
        srv.push(Fault(content=json.dumps({"prompts": ["Say hello.\nSay keep.\n"]})))
        srv.push(Fault(status=500))
        srv.push(Fault(status=500))
        srv.push(Fault(status=500))
        result = _run(pytester, "--hgd-search=8", "--hgd-search-policy=budget:10")
        first = srv.requests[0]
    search = _report(pytester)["search"]
    log = read_log(pytester.path / ".hgd/search/log.jsonl")
    (proposed,) = [e for e in log if e["proposer"] == "llm:rewriter"]
    assert proposed["best"] and proposed["diff"].endswith("-Say block.\n Say keep.\n")
    assert search["best"]["train"]["passed"] == 24
    assert search["proposer"]["name"] == "llm:rewriter" and search["proposer"]["calls"] >= 2
    assert first.body["model"] == "rewriter"
    assert first.headers["authorization"] == f"Bearer {secret}"
    asked = first.body["messages"][-1]["content"]
    assert "Say block." in asked and re.search(r"q[01] \d", asked)  # the prompt, a failure
    result.stdout.fnmatch_lines(["  note: proposer llm:rewriter raised ProposerError*"])
    outputs = [result.stdout.str(), (pytester.path / "report.json").read_text(),
               (pytester.path / ".hgd/search/log.jsonl").read_text()]  # fmt: skip
    assert not any(secret in text for text in outputs)


def test_a_bad_proposer_setting_is_a_usage_error(pytester: pytest.Pytester) -> None:
    _valley(pytester, files=2, proposer="")
    (pytester.path / "template.txt").write_text("Rewrite $prompt as $unknown.\n")
    pytester.makeini(
        "[pytest]\nhgd_agent = valley_agent:reply\nhgd_prompt = start.txt\n"
        "hgd_proposer = openai:rewriter\nhgd_proposer_template = template.txt\n"
    )
    result = _run(pytester, "--hgd-search=2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini hgd_proposer_template:*template.txt*unknown*"])
    pytester.makeini(
        "[pytest]\nhgd_agent = valley_agent:reply\nhgd_prompt = start.txt\n"
        "hgd_proposer = rewriter\n"
    )
    result = _run(pytester, "--hgd-search=2")
    result.stderr.fnmatch_lines(["*ini hgd_proposer='rewriter': expected openai:MODEL*"])


def _search_report(diff: str, curve: list[dict[str, Any]], evaluated: int) -> dict[str, Any]:
    side = {"train": {"passed": 3, "total": 4}, "holdout": {"passed": 1, "total": 2},
            "locked_regressed": 0, "holdout_locked_regressed": 0}  # fmt: skip
    return {"search": {"evaluated": evaluated, "policy": "strict", "start": side, "best": side,
                       "best_is_start": False, "curve": curve, "calls": 0,
                       "best_prompt": {"diff": diff}}}  # fmt: skip


def test_a_prompt_with_a_code_fence_cannot_break_the_markdown() -> None:
    from pytest_hgd.reports.search_view import markdown_lines
    from pytest_hgd.reports.summary import markdown_text

    diff = "--- parent\n+++ candidate\n@@ -1 +1 @@\n ```\n-old\n+new `````x\n"
    lines = markdown_lines(_search_report(diff, [], 2), markdown_text)
    opening = next(line for line in lines if line.endswith("diff"))
    fence = opening[: -len("diff")]
    assert set(fence) == {"`"} and len(fence) == 6  # longer than any run in the diff
    assert lines[lines.index(opening) + 1 :].index(fence) == len(diff.splitlines())


def test_the_curve_runs_to_the_last_candidate_evaluated() -> None:
    from pytest_hgd.reports.search_view import html_section

    curve = [{"evaluated": 0, "train": 0.5, "holdout": 0.5},
             {"evaluated": 8, "train": 0.75, "holdout": 0.8}]  # fmt: skip
    html = html_section(_search_report("", curve, 20))
    points = re.search(r'class="curve-train" points="([^"]+)"', html)
    assert points is not None
    xs = [float(point.split(",")[0]) for point in points.group(1).split()]
    left, right = xs[0], xs[-1]
    assert xs == sorted(xs) and len(xs) == 4  # start, the step at 8, its rise, the end
    assert xs[1] == pytest.approx(left + (right - left) * 8 / 20)
