"""CI shards: ``--hgd-shard=I/N`` runs one shard, ``--hgd-partial`` writes its evidence, and
``hgd merge`` makes the one decision: a single run's reports and ledger record."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import Gate, conversation

from pytest_hgd.cli import main
from pytest_hgd.core.shards import parse_shard, shard_of
from pytest_hgd.storage.ledger import read_ledger

CHECK = [{"contains": "good"}]
KEYS = [f"q{i:02d}" for i in range(12)]


def suite(hgd: Gate, candidate: dict[str, str]) -> tuple[str, ...]:
    hgd.prompt("base.txt", dict.fromkeys(KEYS, "good"))
    hgd.prompt("cand.txt", candidate)
    for name, keys in (("a", KEYS[:6]), ("b", KEYS[6:])):
        hgd.pairs(
            f"{name}.hgd.yaml",
            conversation(*({"id": k, "customer": k, "checks": CHECK} for k in keys)),
        )
    return ("--hgd-baseline=base.txt", "--hgd-candidate=cand.txt")


def timeless(report: dict[str, Any]) -> dict[str, Any]:
    """The report without what differs between any two runs: times, the commit."""
    report = json.loads(json.dumps(report))
    for point in report.get("trend", []):
        point.pop("time", None)
    return report


def test_shards_are_a_stable_hash_of_the_pair_id() -> None:
    ids = [f"f.hgd.yaml::p{i}" for i in range(400)]
    shards = [shard_of(i, 4) for i in ids]
    assert set(shards) == {1, 2, 3, 4} and all(60 < shards.count(s) < 140 for s in range(1, 5))
    more = [*ids, *(f"g.hgd.yaml::n{i}" for i in range(100))]
    assert [shard_of(i, 4) for i in more[:400]] == shards  # adding pairs moves none
    assert parse_shard("2/4") == (2, 4)
    for bad in ("0/4", "5/4", "2", "a/b", "1/0"):
        with pytest.raises(ValueError):
            parse_shard(bad)


@pytest.mark.parametrize("samples", [(), ("--hgd-samples=auto",)], ids=["one-shot", "auto"])
def test_three_shards_merged_are_the_serial_run(
    hgd: Gate, samples: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    candidate = {**dict.fromkeys(KEYS, "good"), "q03": "bad", "q09": "bad"}
    args = (*suite(hgd, candidate), *samples, "--hgd-no-cache")  # the same calls every run
    serial = hgd.run(*args, "--hgd-report=serial.json", "--hgd-ledger=serial.jsonl")
    serial.assert_outcomes(passed=10, failed=2)
    partials = []
    for index in (1, 2, 3):
        path = hgd.path / f"shard{index}.json"
        shard = hgd.run(*args, f"--hgd-shard={index}/3", f"--hgd-partial={path}")
        shard.stdout.fnmatch_lines([f"hgd: shard {index}/3: evidence of * pairs written to *"])
        assert not (hgd.path / ".hgd" / "ledger.jsonl").exists()  # a shard decides nothing
        partials.append(str(path))
    merged_ledger = hgd.path / "merged.jsonl"
    code = main(["merge", *partials, "--report", str(hgd.path / "merged.json"),
                 "--ledger", str(merged_ledger), "--markdown", str(hgd.path / "m.md")])  # fmt: skip
    assert code == 1  # two regressions: the gate fails
    out = capsys.readouterr().out
    assert "verdict: FAIL (2 regressed)" in out
    serial_report = json.loads((hgd.path / "serial.json").read_text(encoding="utf-8"))
    merged_report = json.loads((hgd.path / "merged.json").read_text(encoding="utf-8"))
    assert timeless(merged_report) == timeless(serial_report)
    (serial_record,) = read_ledger(hgd.path / "serial.jsonl").records
    (merged_record,) = read_ledger(merged_ledger).records
    for record in (serial_record, merged_record):
        record.pop("time")
        for point in record.get("pressure", {}).get("trend", []):
            point.pop("time", None)
    assert merged_record == serial_record


def test_a_shard_alone_is_a_partial_run(hgd: Gate) -> None:
    args = suite(hgd, dict.fromkeys(KEYS, "good"))
    result = hgd.run(*args, "--hgd-shard=1/3", "--hgd-report=r.json")
    report = hgd.report("r.json")
    assert report["partial"] is True and report["selection"]["enforced"] == 12
    assert any(why.startswith("--hgd-shard=1/3: ") for why in report["selection"]["why"])
    ran = report["selection"]["ran"]
    assert ran == sum(shard_of(f"{f}.hgd.yaml::{k}", 3) == 1 for f, ks in
                      (("a", KEYS[:6]), ("b", KEYS[6:])) for k in ks)  # fmt: skip
    result.stdout.fnmatch_lines(["*verdict: NONE for the gate*"])


def test_partials_that_do_not_belong_together_are_refused(
    hgd: Gate, capsys: pytest.CaptureFixture[str]
) -> None:
    args = suite(hgd, dict.fromkeys(KEYS, "good"))
    paths = {}
    for index in (1, 2):
        paths[index] = hgd.path / f"s{index}.json"
        hgd.run(*args, f"--hgd-shard={index}/2", f"--hgd-partial={paths[index]}")
    hgd.prompt("cand.txt", {**dict.fromkeys(KEYS, "good"), "q00": "bad"})
    other = hgd.path / "other.json"
    hgd.run(*args, "--hgd-shard=2/2", f"--hgd-partial={other}")
    (hgd.path / "junk.json").write_text('{"pairs": []}', encoding="utf-8")
    cases = [
        ([paths[1]], "shard(s) 2/2 missing"),
        ([paths[1], paths[1]], "shard 1/2 is given twice"),
        ([paths[1], other], "differ in their prompts"),
        ([paths[1], hgd.path / "junk.json"], "is not a shard's partial"),
        ([paths[1], hgd.path / "nowhere.json"], "cannot read"),
    ]
    for given, message in cases:
        assert main(["merge", *map(str, given)]) == 2
        err = capsys.readouterr().err
        assert "hgd merge: error: " in err and message in err, err
    assert main(["merge", str(paths[1]), str(paths[2])]) == 0
    assert "verdict: PASS" in capsys.readouterr().out


def test_shards_run_under_xdist_merge_with_serial_ones(
    hgd: Gate, capsys: pytest.CaptureFixture[str]
) -> None:
    """Under xdist the controller collects nothing: the workers hand it the suite's hash, so
    an xdist shard's partial matches a serial shard's, and a shard that collected fewer
    files is refused."""
    pytest.importorskip("xdist")
    args = (*suite(hgd, dict.fromkeys(KEYS, "good")), "--hgd-no-cache")
    hgd.run(*args, "--hgd-shard=1/2", "--hgd-partial=s1.json", "-p", "xdist", "-n", "2")
    hgd.run(*args, "--hgd-shard=2/2", "--hgd-partial=s2.json")
    hgd.run(*args, "--hgd-shard=2/2", "--hgd-partial=fewer.json", "--ignore=b.hgd.yaml")
    first = json.loads((hgd.path / "s1.json").read_text(encoding="utf-8"))
    second = json.loads((hgd.path / "s2.json").read_text(encoding="utf-8"))
    assert first["collected"] == second["collected"] and first["collected"]["enforced"] == 12
    assert main(["merge", str(hgd.path / "s1.json"), str(hgd.path / "s2.json")]) == 0
    assert "verdict: PASS" in capsys.readouterr().out
    assert main(["merge", str(hgd.path / "s1.json"), str(hgd.path / "fewer.json")]) == 2
    assert "differ in the suite they collected" in capsys.readouterr().err
