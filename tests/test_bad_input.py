"""Bad input gives a clear message naming the file, the line and what to do; no traceback."""

from __future__ import annotations

import subprocess

import pytest
from conftest import Gate

GOOD_PAIR = '  - id: a\n    customer: "hi"\n    reply: "hello"\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "outcome: lead\npairs:\n  - customer: [unclosed\n",
            "c.hgd.yaml:4: is not valid YAML*(*started at line 3)",
        ),
        (
            "outcome: lead\npairs:\n  - customer: hi\n    checks:\n      - sparkles: 1\n",
            "c.hgd.yaml:5: pairs[[]0[]].checks[[]0[]]: unknown check 'sparkles'. Hint: Known checks: contains,*",
        ),
        (
            "outcome: lead\npairs:\n  - id: a\n    reply: hello\n",
            "c.hgd.yaml:3: pairs[[]0[]]: missing required field 'customer'. Hint: Add `customer:` to it.",
        ),
        (
            "outcome: lead\npairs:\n  - customer: hi\n    reply: hello\n    history: nope\n",
            "c.hgd.yaml:5: pairs[[]0[]].history: expected array, got a string.*",
        ),
        (
            "outcome: lead\npairs:\n" + GOOD_PAIR + GOOD_PAIR,
            "c.hgd.yaml:6: pairs[[]1[]]: duplicate pair id 'a' (first used at line 3).*",
        ),
        (
            "outcome: maybe\npairs: []\n",
            "c.hgd.yaml:1: outcome: 'maybe' is not one of: lead, no_lead.*",
        ),
        ("pairs: []\n", "c.hgd.yaml:1: the file: missing required field 'outcome'.*"),
        (
            "outcome: lead\npairs:\n  - customer: hi\n",
            "c.hgd.yaml:3: pairs[[]0[]]: needs a `reply` or `checks`.*",
        ),
        (
            "outcome: lead\npairs:\n  - customer: hi\n    checks:\n      - regex: '(('\n",
            "c.hgd.yaml:5: pairs[[]0[]].checks[[]0[]]: regex '((' does not compile*",
        ),
        (
            "outcome: lead\npairs:\n  - customer: hi\n    checks:\n      - contains: 3\n",
            "c.hgd.yaml:5: pairs[[]0[]].checks[[]0[]].contains: expected a string or a non-empty list*",
        ),
        (
            "outcome: lead\npairs:\n  - customer: hi\n    reply: x\n    checks:\n      - {contains: a, regex: b}\n",
            "c.hgd.yaml:6: pairs[[]0[]].checks[[]0[]]: a check is a mapping with exactly one check name.*",
        ),
        (
            "outcome: lead\npairs:\n  - customer: hi\n    reply: x\n    colour: red\n",
            "c.hgd.yaml:5: pairs[[]0[]]: unknown field 'colour'.*",
        ),
        (
            "- just\n- a list\n",
            "c.hgd.yaml:1: must be a mapping with `outcome:` and `pairs:`, not a list*",
        ),
        ("", "c.hgd.yaml:1: is empty.*"),
        (
            "outcome: lead\npairs:\n  - customer: !!python/object:os.system hi\n    reply: x\n",
            "c.hgd.yaml:3: unsupported YAML tag*",
        ),
        (
            "outcome: lead\npairs:\n  - customer: hi\n    checks:\n      - json_schema: {type: 12}\n",
            "c.hgd.yaml:5: *json_schema is not a valid JSON Schema*",
        ),
    ],
)
def test_malformed_pair_file_is_a_collection_error(hgd: Gate, text: str, expected: str) -> None:
    hgd.prompt("p.txt", {"*": "x"})
    hgd.pairs("c.hgd.yaml", text)
    result = hgd.run("--hgd-candidate=p.txt")
    result.assert_outcomes(errors=1)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([expected])
    output = result.stdout.str()
    assert "Traceback" not in output
    assert "INTERNALERROR" not in output


def test_non_utf8_file(hgd: Gate) -> None:
    hgd.prompt("p.txt", {"*": "x"})
    (hgd.path / "c.hgd.yaml").write_bytes(b"outcome: lead\npairs:\n  - customer: \xff\xfe\n")
    result = hgd.run("--hgd-candidate=p.txt")
    result.stdout.fnmatch_lines(["c.hgd.yaml:3: is not UTF-8 text. Hint: Save the file as UTF-8."])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--hgd-candidate=missing.txt"],
            "*--hgd-candidate: prompt file '*missing.txt' does not exist*",
        ),
        (
            ["--hgd-candidate=p.txt", "--hgd-baseline=nope.txt"],
            "*--hgd-baseline: prompt file*nope.txt' does not exist*",
        ),
        (
            ["--hgd-candidate=p.txt", "--hgd-agent=nomodule:reply"],
            "*--hgd-agent=nomodule:reply: cannot import module 'nomodule'*",
        ),
        (
            ["--hgd-candidate=p.txt", "--hgd-agent=hgd_agent:missing"],
            "*module 'hgd_agent' has no attribute 'missing'*",
        ),
        (
            ["--hgd-candidate=p.txt", "--hgd-agent=hgd_agent"],
            "*is not of the form package.module:function*",
        ),
        (
            ["--hgd-candidate=p.txt", "--hgd-agent=hgd_agent:one_arg"],
            "*must accept (prompt: str, messages: list[[]dict[]])*",
        ),
        (
            ["--hgd-candidate=p.txt", "--hgd-timeout=soon"],
            "*--hgd-timeout='soon': expected a number of seconds > 0*",
        ),
        (
            ["--hgd-candidate=p.txt", "--hgd-concurrency=0"],
            "*--hgd-concurrency='0': expected a whole number > 0*",
        ),
        (["--hgd-candidate=p.txt", "--hgd-baseline=git:main"], "*is not of the form git:REV:PATH*"),
    ],
)
def test_usage_errors(hgd: Gate, args: list[str], expected: str) -> None:
    hgd.prompt("p.txt", {"*": "x"})
    with (hgd.path / "hgd_agent.py").open("a") as module:
        module.write("\ndef one_arg(prompt):\n    return prompt\n")
    result = hgd.run(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])
    assert "Traceback" not in result.stderr.str()


def test_missing_agent_and_prompt(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--hgd")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*pytest --hgd needs an agent: --hgd-agent=*"])
    result = pytester.runpytest("--hgd", "--hgd-agent=x:y")
    result.stderr.fnmatch_lines(["*pytest --hgd needs a candidate prompt: --hgd-candidate=PATH*"])


def _git(cwd: object, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_git_baseline(hgd: Gate) -> None:
    _git(hgd.path, "init", "-q", "-b", "main")
    _git(
        hgd.path,
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "0",
    )
    (hgd.path / "prompts").mkdir()
    hgd.prompt("prompts/system.txt", {"*": "good"})
    _git(hgd.path, "add", "prompts/system.txt")
    _git(hgd.path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "champion")
    hgd.prompt("prompts/system.txt", {"*": "bad"})  # the branch's edit, not committed
    hgd.pairs(
        "c.hgd.yaml", "outcome: lead\npairs:\n  - customer: q\n    checks: [{contains: good}]\n"
    )
    result = hgd.run(
        "--hgd-candidate=prompts/system.txt",
        "--hgd-baseline=git:main:prompts/system.txt",
        "--hgd-report=report.json",
    )
    result.assert_outcomes(failed=1)
    report = hgd.report()
    assert report["pairs"][0]["delta"] == "regressed"
    assert report["prompts"]["baseline"]["source"] == "git:main:prompts/system.txt"
    result = hgd.run(
        "--hgd-candidate=prompts/system.txt", "--hgd-baseline=git:nosuchrev:prompts/system.txt"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown git revision 'nosuchrev'*"])
    result = hgd.run(
        "--hgd-candidate=prompts/system.txt", "--hgd-baseline=git:main:prompts/other.txt"
    )
    result.stderr.fnmatch_lines(["*no file 'prompts/other.txt' at revision 'main'*"])
