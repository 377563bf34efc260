"""The example ledger in examples/car_sales/ledger-example, checked against hand arithmetic.

The worked example "Worked example: car_sales" in docs/pressure.md takes the ledger's last
record apart; these tests redo its arithmetic with fractions, compare it with the record,
with ``compute_pressure`` and with the numbers printed in the docs, and run the plugin once
more on a copy of the ledger.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from pytest_hgd.core.beta import beta_quantile
from pytest_hgd.core.pressure import compute_pressure
from pytest_hgd.storage.ledger import read_ledger

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "car_sales"
FOLDER = EXAMPLE / "ledger-example"
LEDGER = FOLDER / "ledger.jsonl"
KAPPA = 4  # NOISE_PULL, written out
MINUS, PRIME = "\u2212", "\u2032"  # as printed in the docs
TABLE = ("<!-- table: make_ledger.py writes from here -->", "<!-- table: to here -->")

# Run 14 by hand. Enforced (locked) pairs by (re-run passes r, re-runs m): how many pairs.
CLASSES = {(9, 9): 4, (8, 9): 1, (6, 6): 10, (5, 6): 1, (3, 3): 6, (2, 2): 2}
ACCEPTED, N = 2, 8  # accepted candidates, candidates (each prompt once, at its latest run)
# The two accepted candidates ran before later conversations joined: the enforced pairs they
# never met, by class. prices.txt (run 2) met call-1004 only; polite.txt (run 4) also 1002.
UNMET = ({(6, 6): 10, (5, 6): 1, (3, 3): 6, (2, 2): 2}, {(6, 6): 6, (3, 3): 6, (2, 2): 2})
# With the two stale pairs retired, runs 8 and 9 (which met 1001 but not 1003/1005) join.
UNMET_RETIRED = (
    {(6, 6): 9, (5, 6): 1, (3, 3): 5, (2, 2): 2},
    {(6, 6): 5, (3, 3): 5, (2, 2): 2},
    {(3, 3): 5, (2, 2): 2},
    {(3, 3): 5, (2, 2): 2},
)
BLOCKED = [1, 1, 5, 11, 1, 2]  # pairs broken by each rejected candidate: runs 8, 9, 11-14
# Retiring summit-details (r = m = 6) and volta-range (r = m = 3) re-judges runs 8 and 9.
CLASSES_RETIRED = {(9, 9): 4, (8, 9): 1, (6, 6): 9, (5, 6): 1, (3, 3): 5, (2, 2): 2}
RETIRED = ["pairs/call-1001.hgd.yaml::summit-details", "pairs/call-1003.hgd.yaml::volta-range"]


def records() -> list[dict[str, Any]]:
    read = read_ledger(LEDGER)
    assert read.problems == []
    return read.records


def without_pressure(record: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key != "pressure"}


def doc_section() -> str:
    text = (ROOT / "docs" / "pressure.md").read_text(encoding="utf-8")
    return text.split("## Worked example: car_sales", 1)[1]


def pool(classes: dict[tuple[int, int], int]) -> tuple[int, int, Fraction]:
    """R, T and mu = (R + 1)/(T + 1)."""
    r_sum = sum(r * count for (r, _), count in classes.items())
    t_sum = sum(m * count for (_, m), count in classes.items())
    return r_sum, t_sum, Fraction(r_sum + 1, t_sum + 1)


def survival(classes: dict[tuple[int, int], int], mu: Fraction | None = None) -> Fraction:
    """S = prod p_i, p_i = (r_i + kappa mu)/(m_i + kappa); mu pooled from ``classes``."""
    mu = pool(classes)[2] if mu is None else mu
    product = Fraction(1)
    for (r, m), count in classes.items():
        product *= ((r + KAPPA * mu) / (m + KAPPA)) ** count
    return product


def passes_today(
    mu: Fraction, unmet_sets: tuple[dict[tuple[int, int], int], ...] = UNMET
) -> Fraction:
    """The accepted candidates' chances on today's suite: prod p_i over the pairs unmet."""
    return sum((survival(unmet, mu) for unmet in unmet_sets), Fraction(0))


def headline(s: float, k: int, n: int) -> float:
    """pressure = 1 - F, F = (k + S)/(n + 1), the mean of Beta(k + S, n - k + 1 - S)."""
    return 1.0 - (k + s) / (n + 1)


def test_the_evidence_classes_are_what_the_ledger_holds() -> None:
    recs = records()
    last = recs[-1]
    base = last["baseline_hash"]
    assert len({json.dumps(r["agent"], sort_keys=True) for r in recs}) == 1
    classes: Counter[tuple[int, int]] = Counter()
    for pid, entry in last["pairs"].items():
        if entry["kind"] != "locked":
            assert entry["delta"] == "still_failing"  # corrected pairs: not enforced
            continue
        fresh: dict[str, list[int]] = {}  # prompt hash -> [passes, runs], uncached only
        for record in recs:
            seen = record["pairs"].get(pid)
            for side in ("baseline", "candidate"):
                if seen and seen[side] and not seen.get(f"{side}_cached"):
                    tally = fresh.setdefault(record[f"{side}_hash"], [0, 0])
                    tally[0] += seen[side][0]
                    tally[1] += seen[side][1]
        s, n = fresh.pop(base)  # the candidates' runs are not the baseline's noise
        classes[(s - 1, n - 1)] += 1
    assert classes == CLASSES


def test_worked_example_by_hand_matches_the_record_compute_pressure_and_the_docs() -> None:
    recs = records()
    stored = recs[-1]["pressure"]
    computed = compute_pressure(without_pressure(recs[-1]), recs[:-1])
    assert computed == stored

    r_sum, t_sum, mu = pool(CLASSES)
    assert (r_sum, t_sum, mu) == (131, 133, Fraction(66, 67))
    rates = {rm: (rm[0] + KAPPA * mu) / (rm[1] + KAPPA) for rm in CLASSES}
    assert rates == {
        (9, 9): Fraction(867, 871),
        (8, 9): Fraction(800, 871),
        (6, 6): Fraction(333, 335),
        (5, 6): Fraction(599, 670),
        (3, 3): Fraction(465, 469),
        (2, 2): Fraction(199, 201),
    }
    s = float(survival(CLASSES))
    k = float(passes_today(mu))
    f = (k + s) / (N + 1)
    pressure = headline(s, k, N)
    eps, share = Fraction(11, 24), Fraction(11, 35)
    mean_broken = Fraction(sum(BLOCKED), N)
    growth = Fraction(35 - 8, 13)

    assert stored["value"] == pytest.approx(pressure, abs=1e-6)
    assert stored["survival"]["value"] == pytest.approx(s, abs=1e-6)
    assert stored["survival"]["pass_rate"] == pytest.approx(float(mu), abs=1e-6)
    assert (stored["survival"]["reruns"], stored["survival"]["rerun_failures"]) == (133, 2)
    assert stored["systematic"]["value"] == pytest.approx(f / s, abs=1e-6)
    assert (stored["acceptance"]["accepted"], stored["acceptance"]["candidates"]) == (ACCEPTED, N)
    assert stored["acceptance"]["passes_today"] == pytest.approx(k, abs=1e-6)
    assert stored["acceptance"]["mean_broken"] == pytest.approx(float(mean_broken), abs=1e-6)
    assert stored["epsilon"]["value"] == pytest.approx(float(eps), abs=1e-6)
    assert stored["epsilon"]["share"] == pytest.approx(float(share), abs=1e-6)
    assert stored["constraints"]["growth_per_run"] == pytest.approx(float(growth), abs=1e-6)
    assert [b["blocked"] for b in stored["binding"][:3]] == [4, 2, 2]
    # S's band: mu's Jeffreys ends; every pair at mu_lo, only the two flipped pairs at mu_hi.
    mu_lo, mu_hi = stored["survival"]["pass_rate_band"]
    s_lo, s_hi = stored["survival"]["band"]
    assert s_hi == pytest.approx((8 + KAPPA * mu_hi) / 13 * (5 + KAPPA * mu_hi) / 10, abs=2e-6)
    # F's band: quantiles of Beta(k + S, N - k + 1 - S) at the noise's two readings; at the
    # high end only metro-mileage, unmet by prices.txt, is noisy.
    k_lo = float(passes_today(Fraction(mu_lo)))
    k_hi = 1 + (5 + KAPPA * mu_hi) / 10
    f_lo = beta_quantile(0.05, k_lo + s_lo, N - k_lo + 1 - s_lo)
    f_hi = beta_quantile(0.95, k_hi + s_hi, N - k_hi + 1 - s_hi)
    assert stored["band"] == pytest.approx([1 - f_hi, 1 - f_lo], abs=2e-6)

    doc = doc_section()
    for number in (
        "66/67 = 0.985075",
        "867/871 = 0.995408",
        "800/871 = 0.918485",
        "333/335 = 0.994030",
        "599/670 = 0.894030",
        "465/469 = 0.991471",
        "199/201 = 0.990050",
        f"= {s:.6f}",
        f"= {f:.6f}",
        f"pressure = 1 {MINUS} {f:.6f} = {pressure:.6f}",
        f"11/24 = {float(eps):.4f}",
        f"11/35 = {float(share):.4f}",
        f"21/8 = {float(mean_broken):.4f}",
        f"27/13 = {float(growth):.4f}",
        f"[{mu_lo:.6f}, {mu_hi:.6f}]",
        f"[{s_lo:.6f}, {s_hi:.6f}]",
        f"{f_lo:.6f}",
        f"{f_hi:.6f}",
        f"[{stored['band'][0]:.6f}, {stored['band'][1]:.6f}]",
        f"2/8 = {ACCEPTED / N:.4f}",
        f"= {float(survival(UNMET[0], mu)):.6f}",
        f"= {float(survival(UNMET[1], mu)):.6f}",
        f"passes_today = {k:.6f}",
        f"k_lo = {k_lo:.6f}",
        f"k_hi = {k_hi:.6f}",
    ):
        assert number in doc, number


def test_retiring_the_stale_pairs_as_in_the_docs() -> None:
    recs = records()
    what_if = without_pressure(recs[-1])
    what_if["pairs"] = {p: e for p, e in what_if["pairs"].items() if p not in RETIRED}
    what_if["regressed"] = [p for p in what_if["regressed"] if p not in RETIRED]
    what_if["retired"] = RETIRED
    computed = compute_pressure(what_if, recs[:-1])

    r_sum, t_sum, mu = pool(CLASSES_RETIRED)
    assert (r_sum, t_sum, mu) == (122, 124, Fraction(123, 125))
    s = float(survival(CLASSES_RETIRED))
    k = float(passes_today(mu, UNMET_RETIRED))
    pressure = headline(s, k, N)
    assert computed["survival"]["value"] == pytest.approx(s, abs=1e-6)
    assert computed["acceptance"]["accepted"] == ACCEPTED + 2
    assert computed["acceptance"]["passes_today"] == pytest.approx(k, abs=1e-6)
    assert computed["acceptance"]["rejudged"] == 2
    assert computed["value"] == pytest.approx(pressure, abs=1e-6)
    doc = doc_section()
    assert f"= {s:.6f}" in doc
    assert f"= {k:.6f}" in doc and f"k{PRIME} = " in doc
    assert f"pressure = 1 {MINUS} (k{PRIME} + S{PRIME})/9 = {pressure:.6f}" in doc


def test_pressure_rises_as_locked_pairs_accumulate() -> None:
    recs = records()
    suite = [r["pressure"]["constraints"] for r in recs]
    values = [r["pressure"]["value"] for r in recs]
    assert [c["value"] for c in suite] == sorted(c["value"] for c in suite)
    assert [c["locked"] for c in suite] == sorted(c["locked"] for c in suite)
    assert suite[0]["value"] < suite[-1]["value"] == 35
    assert values == sorted(values)
    assert values[0] == 0.0 and values[-1] >= 0.6
    assert all(r["commit"] is None for r in recs)
    assert len(recs) <= 15


def test_the_readme_table_shows_the_ledger() -> None:
    text = (FOLDER / "README.md").read_text(encoding="utf-8")
    assert "EXAMPLE DATA, generated by `make_ledger.py`" in text
    block = text.split(TABLE[0], 1)[1].split(TABLE[1], 1)[0]
    rows = [line.split(" | ") for line in block.strip().splitlines()[2:]]
    recs = records()
    assert len(rows) == len(recs)
    for row, record in zip(rows, recs, strict=True):
        pressure = record["pressure"]
        acceptance = pressure["acceptance"]
        assert row[2].startswith(f"{pressure['constraints']['value']} (")
        assert row[6:9] == [
            f"{pressure['value']:.4f}",
            f"{pressure['survival']['value']:.4f}",
            f"{acceptance['accepted']} / {acceptance['candidates']}",
        ]


def test_every_stored_pressure_is_what_the_ledger_before_it_gives() -> None:
    recs = records()
    for index, record in enumerate(recs):
        again = compute_pressure(without_pressure(record), recs[:index])
        assert again["value"] == record["pressure"]["value"], index + 1


def test_the_readme_command_on_a_copy_of_the_ledger(tmp_path: Path) -> None:
    workdir, ledger = tmp_path / "car_sales", tmp_path / "l.jsonl"
    shutil.copytree(EXAMPLE, workdir, ignore=shutil.ignore_patterns(".*", "ledger-example"))
    shutil.copy(LEDGER, ledger)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    args = ["--hgd", "-q", "-p", "no:cacheprovider", "--hgd-baseline=prompts/baseline.txt"]
    args += ["--hgd-candidate=prompts/candidate_fixes.txt", f"--hgd-ledger={ledger}"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *args, "--hgd-no-cache"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    after = read_ledger(ledger).records
    assert after[:-1] == records()
    new = after[-1]["pressure"]
    s = float(survival(CLASSES))  # the steady agent's single runs add no re-runs
    assert new["survival"]["value"] == pytest.approx(s, abs=1e-6)
    # candidate_fixes.txt was rejected by noise in run 13: the same candidate, now accepted.
    k = float(passes_today(pool(CLASSES)[2])) + 1  # it met every pair
    assert (new["acceptance"]["accepted"], new["acceptance"]["candidates"]) == (ACCEPTED + 1, N)
    assert new["value"] == pytest.approx(headline(s, k, N), abs=1e-6)
    assert new["warning"] is False
    readme = (FOLDER / "README.md").read_text(encoding="utf-8")
    assert f"1 {MINUS} (k + S)/9 = {headline(s, k, N):.6f}" in readme
    assert f"k = 1 + {k - 1:.6f}" in readme
    assert f"S = {s:.6f}" in readme
