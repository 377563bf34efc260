"""End to end: pair files collected by pytest, the agent called, deltas, outcomes, verdict."""

from __future__ import annotations

import sys

import pytest
from conftest import Gate, conversation

from pytest_hgd.core.settings import DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT
from pytest_hgd.plugin.options import resolve


def pair(customer: str, reply: str | None = None, **extra: object) -> dict[str, object]:
    data: dict[str, object] = {"id": customer.replace(" ", "-"), "customer": customer}
    if reply is not None:
        data["reply"] = reply
    data.update(extra)
    return data


CHECK = [{"contains": "good"}]


@pytest.mark.parametrize(
    ("baseline", "candidate", "delta", "outcome"),
    [
        ("good", "good", "kept", {"passed": 1}),
        ("bad", "good", "fixed", {"passed": 1}),
        ("good", "bad", "regressed", {"failed": 1}),
        ("bad", "bad", "still_failing", {"xfailed": 1}),
        ("good", "RAISE", "error", {"errors": 1}),
        ("RAISE", "good", "error", {"errors": 1}),
    ],
)
def test_every_delta_of_the_spec_table(
    hgd: Gate, baseline: str, candidate: str, delta: str, outcome: dict[str, int]
) -> None:
    hgd.prompt("base.txt", {"q": baseline})
    hgd.prompt("cand.txt", {"q": candidate})
    hgd.pairs("c.hgd.yaml", conversation(pair("q", checks=CHECK)))
    result = hgd.run(
        "--hgd-baseline=base.txt", "--hgd-candidate=cand.txt", "--hgd-report=report.json"
    )
    result.assert_outcomes(**outcome)
    report = hgd.report()
    assert [p["delta"] for p in report["pairs"]] == [delta]
    assert report["counts"][delta] == 1
    failing = delta in ("regressed", "error")
    assert report["verdict"] == ("fail" if failing else "pass")
    assert result.ret == (1 if failing else 0)
    result.stdout.fnmatch_lines(
        ["*= HGD gate =*", f"deltas: 1 {delta}", f"verdict: {report['verdict'].upper()}*"]
    )


@pytest.mark.parametrize(
    ("answer", "delta", "outcome", "ret"),
    [("good", "new_pass", {"passed": 1}, 0), ("bad", "new_fail", {"failed": 1}, 1)],
)
def test_without_baseline_pairs_are_new(
    hgd: Gate, answer: str, delta: str, outcome: dict[str, int], ret: int
) -> None:
    hgd.prompt("cand.txt", {"q": answer})
    hgd.pairs("c.hgd.yaml", conversation(pair("q", checks=CHECK)))
    result = hgd.run("--hgd-candidate=cand.txt", "--hgd-report=report.json")
    result.assert_outcomes(**outcome)
    assert result.ret == ret
    assert hgd.report()["pairs"][0]["delta"] == delta


def test_strict_makes_still_failing_fail(hgd: Gate) -> None:
    hgd.prompt("p.txt", {"q": "bad"})
    hgd.pairs("c.hgd.yaml", conversation(pair("q", checks=CHECK)))
    result = hgd.run(
        "--hgd-baseline=p.txt", "--hgd-candidate=p.txt", "--hgd-strict", "--hgd-report=report.json"
    )
    result.assert_outcomes(failed=1)
    assert result.ret == 1
    report = hgd.report()
    assert report["verdict"] == "fail"
    assert report["pairs"][0]["delta"] == "still_failing"


def test_regression_message_names_check_and_reply(hgd: Gate) -> None:
    hgd.prompt("base.txt", {"price?": "A sales rep will call."})
    hgd.prompt("cand.txt", {"price?": "It costs $5."})
    hgd.pairs("c.hgd.yaml", conversation(pair("price?", checks=[{"contains": "sales rep"}])))
    result = hgd.run("--hgd-baseline=base.txt", "--hgd-candidate=cand.txt")
    result.stdout.fnmatch_lines(
        [
            "*regressed: locked pair c.hgd.yaml::price?*",
            "*candidate: failed check `contains`: missing 'sales rep'*",
            "*candidate reply: 'It costs $5.'*",
            "*regressed*c.hgd.yaml::price?*",
            "*contains: missing 'sales rep'*It costs $5.*",
            "verdict: FAIL (1 regressed)",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_sync_and_async_agents_and_the_messages_they_get(hgd: Gate) -> None:
    hgd.prompt("p.txt", {"How much?": "$29,250 from a sales rep"})
    history = [{"agent": "Hi, Sam here."}, {"customer": "SUVs please."}, {"agent": "Which one?"}]
    hgd.pairs(
        "c.hgd.yaml",
        conversation(pair("How much?", checks=[{"contains": "sales"}], history=history)),
    )
    expected = [
        {"role": "assistant", "content": "Hi, Sam here."},
        {"role": "user", "content": "SUVs please."},
        {"role": "assistant", "content": "Which one?"},
        {"role": "user", "content": "How much?"},
    ]
    for target in ("hgd_agent:reply", "hgd_agent:areply"):
        hgd.reset_calls()
        result = hgd.run(f"--hgd-agent={target}", "--hgd-candidate=p.txt", "--hgd-no-cache")
        result.assert_outcomes(passed=1)
        (call,) = hgd.calls()
        assert call["messages"] == expected
        assert call["prompt"] == (hgd.path / "p.txt").read_text()


def test_agent_that_returns_none_or_hangs_is_an_error(hgd: Gate) -> None:
    hgd.prompt("p.txt", {"a": "NONE", "b": "SLEEP:3", "c": "good"})
    hgd.pairs(
        "c.hgd.yaml",
        conversation(pair("a", checks=CHECK), pair("b", checks=CHECK), pair("c", checks=CHECK)),
    )
    result = hgd.run("--hgd-candidate=p.txt", "--hgd-timeout=0.5", "--hgd-report=report.json")
    result.assert_outcomes(errors=2, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*agent error under the candidate prompt: agent hgd_agent:reply returned NoneType, not a str*",
            "*agent call timed out after 0.5 s (--hgd-timeout)*",
        ]
    )
    assert hgd.report()["counts"]["error"] == 2
    assert result.ret == 1


def test_error_message_from_a_raising_agent(hgd: Gate) -> None:
    hgd.prompt("p.txt", {"q": "RAISE"})
    hgd.pairs("c.hgd.yaml", conversation(pair("q", checks=CHECK)))
    result = hgd.run("--hgd-candidate=p.txt")
    result.stdout.fnmatch_lines(
        ["*agent raised RuntimeError: the agent broke (at *hgd_agent.py:*)*"]
    )


def test_k_selects_pairs_and_only_they_are_called(hgd: Gate) -> None:
    hgd.prompt("p.txt", {"*": "good"})
    hgd.pairs(
        "c.hgd.yaml",
        conversation(pair("one", checks=CHECK), pair("two", checks=CHECK, tags=["pricing"])),
    )
    result = hgd.run("--hgd-candidate=p.txt", "-k", "pricing")
    result.assert_outcomes(passed=1, deselected=1)
    assert [c["messages"][-1]["content"] for c in hgd.calls()] == ["two"]


def test_second_run_makes_no_baseline_calls(hgd: Gate) -> None:
    hgd.prompt("base.txt", {"*": "good"})
    hgd.prompt("cand.txt", {"*": "good too"})
    hgd.pairs("c.hgd.yaml", conversation(*(pair(f"q{i}", checks=CHECK) for i in range(5))))
    args = ("--hgd-baseline=base.txt", "--hgd-candidate=cand.txt", "--hgd-report=report.json")
    hgd.run(*args).assert_outcomes(passed=5)
    assert len(hgd.calls()) == 10
    hgd.reset_calls()
    hgd.prompt("cand.txt", {"*": "good again"})
    result = hgd.run(*args)
    result.assert_outcomes(passed=5)
    calls = hgd.calls()
    assert len(calls) == 5
    assert all("good again" in c["prompt"] for c in calls)  # only the edited candidate
    assert hgd.report()["calls"]["baseline"] == 0
    result.stdout.fnmatch_lines(["agent calls: baseline 0 (+5 cached), candidate 5 (+0 cached)"])


def test_editing_one_pair_recalls_only_that_pair(hgd: Gate) -> None:
    hgd.prompt("p.txt", {"*": "good"})
    doc = conversation(pair("a", checks=CHECK), pair("b", checks=CHECK))
    hgd.pairs("c.hgd.yaml", doc)
    hgd.run("--hgd-candidate=p.txt", "--hgd-baseline=p.txt").assert_outcomes(passed=2)
    hgd.reset_calls()
    doc["pairs"][1]["history"] = [{"agent": "hello"}]
    hgd.pairs("c.hgd.yaml", doc)
    hgd.run("--hgd-candidate=p.txt", "--hgd-baseline=p.txt").assert_outcomes(passed=2)
    assert len(hgd.calls()) == 1  # one prompt text, so one call serves both roles


def test_no_cache_and_clear_cache(hgd: Gate) -> None:
    hgd.prompt("p.txt", {"*": "good"})
    hgd.pairs("c.hgd.yaml", conversation(pair("a", checks=CHECK)))
    hgd.run("--hgd-candidate=p.txt")
    hgd.run("--hgd-candidate=p.txt", "--hgd-no-cache")
    assert len(hgd.calls()) == 2
    result = hgd.run("--hgd-candidate=p.txt", "--hgd-clear-cache")
    result.stdout.fnmatch_lines(["hgd: cleared 1 cached replies from *"])
    assert len(hgd.calls()) == 3


def test_without_hgd_pair_files_are_not_collected(hgd: Gate) -> None:
    hgd.prompt("p.txt", {"*": "good"})
    hgd.pairs("c.hgd.yaml", conversation(pair("a", checks=CHECK)))
    hgd.pytester.makepyfile(test_plain="def test_ok():\n    pass\n")
    result = hgd.pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "HGD gate" not in result.stdout.str()
    assert not (hgd.path / ".hgd").exists()
    assert hgd.calls() == []


def test_yml_suffix_default_ids_and_conversation_name(hgd: Gate) -> None:
    hgd.prompt("p.txt", {"*": "good"})
    hgd.pairs(
        "sub/call-7.hgd.yml",
        conversation({"customer": "a", "checks": CHECK}, {"customer": "b", "checks": CHECK}),
    )
    result = hgd.run("--hgd-candidate=p.txt", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["sub/call-7.hgd.yml::0", "sub/call-7.hgd.yml::1"])
    result = hgd.run("--hgd-candidate=p.txt", "--hgd-report=report.json")
    assert {p["conversation"] for p in hgd.report()["pairs"]} == {"call-7"}


def test_ini_prompt_is_the_candidate_and_ini_paths_are_rootdir_relative(hgd: Gate) -> None:
    (hgd.path / "prompts").mkdir()
    hgd.prompt("prompts/p.txt", {"*": "good"})
    hgd.pytester.makeini("[pytest]\nhgd_agent = hgd_agent:reply\nhgd_prompt = prompts/p.txt\n")
    hgd.pairs("pairs/c.hgd.yaml", conversation(pair("a", checks=CHECK)))
    sub = hgd.path / "pairs"
    result = hgd.pytester.run(
        sys.executable, "-m", "pytest", "--hgd", "-p", "no:cacheprovider", str(sub)
    )
    assert result.ret == 0, result.stdout.str()


@pytest.mark.parametrize("unset", [None, "", []], ids=["None", "empty string", "empty list"])
def test_unset_ini_keys_take_their_defaults_on_every_supported_pytest(
    hgd: Gate, monkeypatch: pytest.MonkeyPatch, unset: object
) -> None:
    # An ini key registered without a default reads as None (pytest 9), or [] (pytest 7.4, 8):
    # each means "not set", never a value to parse.
    hgd.prompt("p.txt", {"*": "good"})
    config = hgd.pytester.parseconfig("--hgd", "--hgd-candidate=p.txt")
    real_getini = config.getini
    monkeypatch.setattr(
        config, "getini", lambda name: unset if real_getini(name) is None else real_getini(name)
    )
    settings = resolve(config)
    assert (settings.timeout, settings.concurrency) == (DEFAULT_TIMEOUT, DEFAULT_CONCURRENCY)
    assert (settings.samples, settings.pressure_warn, settings.max_pressure) == (1, 0.7, None)
    assert settings.baseline is None and settings.agent_version is None
    assert settings.http.temperature is None and settings.http.max_retries == 4
    assert settings.judge.model is None


def test_xdist_runs_the_gate_and_the_controller_reports(hgd: Gate) -> None:
    pytest.importorskip("xdist")
    hgd.prompt("base.txt", {"*": "good", "q3": "bad"})
    hgd.prompt("cand.txt", {"*": "good", "q2": "bad"})
    hgd.pairs("c.hgd.yaml", conversation(*(pair(f"q{i}", checks=CHECK) for i in range(8))))
    args = ("--hgd-baseline=base.txt", "--hgd-candidate=cand.txt", "--hgd-report=report.json")
    result = hgd.run(*args, "-p", "xdist", "-n", "2")
    result.assert_outcomes(passed=7, failed=1)
    parallel = hgd.report()
    result = hgd.run(*args, "--hgd-no-cache")
    serial = hgd.report()
    assert (
        parallel["counts"]
        == serial["counts"]
        == {**dict.fromkeys(serial["counts"], 0), "kept": 6, "fixed": 1, "regressed": 1}
    )
    assert parallel["pairs"] == serial["pairs"]
    result.stdout.fnmatch_lines(["*= HGD gate =*"])


def test_without_hgd_the_gate_modules_are_not_even_imported(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        "import sys\n"
        "def pytest_sessionfinish(session):\n"
        "    loaded = sorted(m for m in sys.modules if m.startswith('pytest_hgd.'))\n"
        "    print('HGD-MODULES', loaded)\n"
    )
    pytester.makepyfile(test_plain="def test_ok():\n    pass\n")
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    line = next(x for x in result.stdout.lines if "HGD-MODULES" in x)
    assert "pytest_hgd.plugin.session" not in line and "pytest_hgd.core.checks" not in line, line
    assert "pytest_hgd.plugin" in line


def test_still_failing_pairs_build_no_traceback(hgd: Gate) -> None:
    """pytest renders an xfail before it becomes an outcome; a traceback there parsed source
    for every still-failing pair (about 0.2 s each): the plugin hands it the reason instead."""
    hgd.prompt("p.txt", {"*": "bad"})
    hgd.pairs("c.hgd.yaml", conversation(pair("a", checks=CHECK), pair("b", checks=CHECK)))
    reprec = hgd.pytester.inline_run(
        "--hgd", "-p", "no:cacheprovider", "--hgd-baseline=p.txt", "--hgd-candidate=p.txt"
    )
    calls = [r for r in reprec.getreports("pytest_runtest_logreport") if r.when == "call"]
    assert len(calls) == 2 and all(hasattr(r, "wasxfail") for r in calls)
    assert all(isinstance(r.longrepr, str) for r in calls), [type(r.longrepr) for r in calls]
