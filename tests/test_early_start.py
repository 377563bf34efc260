"""The first agent calls go out while pytest is still collecting (plugin/early.py), and never
for pairs the run leaves out."""

from __future__ import annotations

import pytest
from conftest import Gate, conversation

# Collection is slowed down (each pair file's report waits 0.3 s), and the agent's log
# records whether collection had finished when a call was made.
SLOW_COLLECTION = """
import pathlib, time

def pytest_collectreport(report):
    if report.nodeid.endswith(".hgd.yaml"):
        time.sleep(0.3)

def pytest_collection_finish(session):
    pathlib.Path("collected.flag").write_text("done")
"""

AGENT = """
import json, pathlib

def reply(prompt, messages):
    done = pathlib.Path("collected.flag").exists()
    with open("when.log", "a") as log:
        log.write(json.dumps([messages[-1]["content"], done]) + "\\n")
    return "hello"
"""


def _suite(hgd: Gate) -> None:
    hgd.pytester.makeconftest(SLOW_COLLECTION)
    hgd.pytester.makepyfile(early_agent=AGENT)
    hgd.pytester.makeini("[pytest]\nhgd_agent = early_agent:reply\n")
    hgd.prompt("p.txt", {"*": "hello"})
    for i in range(4):
        hgd.pairs(f"c{i}.hgd.yaml", conversation({"id": "a", "customer": f"q{i}",
                                                   "checks": [{"contains": "hello"}]}))  # fmt: skip


def _calls(hgd: Gate) -> list[tuple[str, bool]]:
    import json

    log = hgd.path / "when.log"
    return (
        [tuple(json.loads(line)) for line in log.read_text().splitlines()] if log.exists() else []
    )


def test_calls_start_while_pytest_collects(hgd: Gate) -> None:
    _suite(hgd)
    hgd.run("--hgd-candidate=p.txt").assert_outcomes(passed=4)
    calls = _calls(hgd)
    assert len(calls) == 4
    assert any(not done for _, done in calls)  # made before collection finished
    assert calls[0] == ("q0", False)


@pytest.mark.parametrize(
    "args", [["-k", "c1"], ["c2.hgd.yaml::a"], ["--deselect", "c0.hgd.yaml::a"]]
)
def test_pairs_left_out_are_never_called(hgd: Gate, args: list[str]) -> None:
    _suite(hgd)
    hgd.run("--hgd-candidate=p.txt", *args)
    asked = {question for question, _ in _calls(hgd)}
    expected = {"-k": {"q1"}, "c2.hgd.yaml::a": {"q2"}, "--deselect": {"q1", "q2", "q3"}}
    assert asked == expected[args[0]]
    assert all(done for _, done in _calls(hgd))  # started only once the selection is known


def test_a_shard_starts_only_its_own_pairs_early(hgd: Gate) -> None:
    from pytest_hgd.core.shards import shard_of

    _suite(hgd)
    hgd.run("--hgd-candidate=p.txt", "--hgd-shard=1/2")
    mine = {f"q{i}" for i in range(4) if shard_of(f"c{i}.hgd.yaml::a", 2) == 1}
    assert {question for question, _ in _calls(hgd)} == mine
