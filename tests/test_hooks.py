"""pytest-hgd's hooks implemented from a conftest.py, and the `judge:` check on a real
OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import Gate, conversation
from openai_server import OpenAIServer

CHECK_CONFTEST = """
import pytest
from pytest_hgd.core.checks import CheckType

def starts_with(reply, arg, pair):
    return reply.startswith(arg), f"does not start with {arg!r}"

@pytest.hookimpl(optionalhook=True)
def pytest_hgd_checks(config):
    return [CheckType("starts_with", starts_with, {"type": "string", "minLength": 1})]
"""


def test_a_conftest_adds_a_check(hgd: Gate) -> None:
    hgd.pytester.makeconftest(CHECK_CONFTEST)
    hgd.prompt("p.txt", {"a": "Hello there", "b": "Bye"})
    hgd.pairs(
        "c.hgd.yaml",
        conversation(
            {"id": "a", "customer": "a", "checks": [{"starts_with": "Hello"}]},
            {"id": "b", "customer": "b", "checks": [{"starts_with": "Hello"}, {"contains": "bye"}]},
        ),
    )
    result = hgd.run("--hgd-candidate=p.txt")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*starts_with: does not start with 'Hello'*"])
    hgd.pairs(
        "c.hgd.yaml", conversation({"id": "a", "customer": "a", "checks": [{"starts_with": 3}]})
    )
    result = hgd.run("--hgd-candidate=p.txt")
    result.stdout.fnmatch_lines(
        ["c.hgd.yaml:6: pairs[[]0[]].checks[[]0[]].starts_with: expected string, got an integer."]
    )


def test_a_check_name_registered_twice_is_a_usage_error(hgd: Gate) -> None:
    hgd.pytester.makeconftest(
        CHECK_CONFTEST.replace('"starts_with", starts_with', '"contains", starts_with')
    )
    hgd.prompt("p.txt", {"*": "x"})
    result = hgd.run("--hgd-candidate=p.txt")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*check 'contains' is registered twice (pytest_hgd_checks)*"])


def test_a_conftest_adds_an_agent(hgd: Gate) -> None:
    hgd.pytester.makeconftest("""
import pytest

class Shouting:
    identity = {"kind": "shouting"}
    async def reply(self, prompt, messages):
        return (prompt + " " + messages[-1]["content"]).upper()
    async def aclose(self):
        pass

@pytest.hookimpl(optionalhook=True)
def pytest_hgd_make_agent(config, spec):
    return Shouting() if spec == "shout" else None
""")
    (hgd.path / "p.txt").write_text("say", encoding="utf-8")
    hgd.pairs(
        "c.hgd.yaml", conversation({"id": "a", "customer": "hi", "checks": [{"regex": "^SAY HI$"}]})
    )
    hgd.run("--hgd-agent=shout", "--hgd-candidate=p.txt").assert_outcomes(passed=1)
    hgd.run("--hgd-agent=hgd_agent:reply", "--hgd-candidate=p.txt").assert_outcomes(errors=1)


def test_a_conftest_adds_a_mutator_and_receives_the_report(hgd: Gate) -> None:
    hgd.pytester.makeconftest("""
import json, pathlib
import pytest

def shout(sentences, rng):
    pathlib.Path("mutated.txt").write_text("yes")
    return [s.upper() for s in sentences], "upper-cased every sentence"

@pytest.hookimpl(optionalhook=True)
def pytest_hgd_mutators(config):
    return {"shout": shout}

@pytest.hookimpl(optionalhook=True)
def pytest_hgd_report(config, report):
    pathlib.Path("posted.json").write_text(json.dumps({"verdict": report["verdict"]}))

class Broken:
    @pytest.hookimpl(optionalhook=True)
    def pytest_hgd_report(self, report):
        raise RuntimeError("the chat service is down")

def pytest_configure(config):
    config.pluginmanager.register(Broken(), "broken-poster")
""")
    hgd.prompt("p.txt", {"*": "good"})
    hgd.pairs(
        "c.hgd.yaml", conversation({"id": "a", "customer": "a", "checks": [{"contains": "good"}]})
    )
    result = hgd.run("--hgd-candidate=p.txt", "--hgd-probe=12", "--hgd-report=report.json")
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    assert (hgd.path / "mutated.txt").exists()  # the probe drew from the conftest's mutator
    assert json.loads((hgd.path / "posted.json").read_text()) == {"verdict": "pass"}
    result.stdout.fnmatch_lines(
        ["*pytest_hgd_report in broken-poster raised RuntimeError('the chat service is down')*"]
    )
    assert hgd.report()["verdict"] == "pass"


def test_conftest_with_optional_hooks_loads_without_the_plugin(hgd: Gate) -> None:
    hgd.pytester.makeconftest(CHECK_CONFTEST)
    hgd.pytester.makepyfile(test_plain="def test_ok():\n    pass\n")
    result = hgd.pytester.runpytest("-p", "no:hgd", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def judge_reply(body: dict[str, Any]) -> str:
    question = body["messages"][-1]["content"]
    reply = question.split("The agent's reply:\n", 1)[1].split("\n\nCriterion:", 1)[0]
    if "gibberish" in reply:
        return "I think it is fine, probably."
    if "sales rep" in reply:
        return 'Sure: {"verdict": "pass", "reason": "the reply offers a call from a sales rep"}'
    return '{"verdict": "fail", "reason": "no follow-up call is offered"}'


def judge_ini(hgd: Gate, server: OpenAIServer) -> None:
    hgd.pytester.makeini(
        "[pytest]\nhgd_agent = hgd_agent:reply\n"
        f"hgd_judge_model = judge-model\nhgd_judge_base_url = {server.base_url}\n"
        "hgd_judge_api_key_env = HGD_JUDGE_KEY\n"
    )


def test_judge_check(hgd: Gate, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HGD_JUDGE_KEY", "sk-judge-SECRET-77")
    hgd.prompt("p.txt", {"a": "A sales rep will call you.", "b": "Goodbye.", "c": "gibberish"})
    criterion = {"judge": "The reply offers a follow-up call from a sales rep."}
    hgd.pairs(
        "c.hgd.yaml",
        conversation(*({"id": k, "customer": k, "checks": [criterion]} for k in "abc")),
    )
    with OpenAIServer(reply=judge_reply) as server:
        judge_ini(hgd, server)
        result = hgd.run_subprocess("--hgd-candidate=p.txt", "--hgd-samples=2")
        first_calls = server.calls
        model = server.requests[0].body["model"]
        again = hgd.run_subprocess("--hgd-candidate=p.txt", "--hgd-samples=2")
        second_calls = server.calls - first_calls
    result.assert_outcomes(passed=1, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*judge: no follow-up call is offered (criterion: 'The reply offers a follow-up call from a sales rep.')*",
            "*judge answered something that is not a verdict: 'I think it is fine, probably.'*",
        ]
    )
    assert model == "judge-model"
    assert first_calls == 3  # one question per distinct reply; the 2 samples repeat the reply
    again.assert_outcomes(passed=1, failed=1, errors=1)
    assert second_calls == 1  # verdicts are cached; the nonsense answer was not
    assert "sk-judge-SECRET-77" not in result.stdout.str()


def test_judge_without_a_model_is_a_collection_error(hgd: Gate) -> None:
    hgd.prompt("p.txt", {"*": "x"})
    hgd.pairs(
        "c.hgd.yaml", conversation({"id": "a", "customer": "a", "checks": [{"judge": "polite"}]})
    )
    result = hgd.run("--hgd-candidate=p.txt")
    result.stdout.fnmatch_lines(
        ["c.hgd.yaml:6: *the `judge` check needs a judge model: set `hgd_judge_model`*"]
    )
