"""What an item puts on its test report (`plugin/items.py`), on its own: the payload of one
prompt's evaluation, which is the evidence the run's one decision is made from."""

from __future__ import annotations

from pytest_hgd.core.model import CheckResult, Evaluation, Reply
from pytest_hgd.core.stats import PassCounts
from pytest_hgd.plugin.items import REPLY_EXCERPT, result_payload

PASS = (CheckResult("contains", True, "found"),)
FAIL = (CheckResult("contains", False, "'good' not in the reply"),)


def test_a_payload_counts_passes_runs_calls_and_shows_the_first_failure() -> None:
    evaluation = Evaluation(
        (Reply("good", cached=True), Reply("bad"), Reply("x" * 5000)), (PASS, FAIL, FAIL)
    )
    payload = result_payload(evaluation)
    assert payload is not None
    assert (payload["passes"], payload["runs"], payload["called"]) == (1, 3, 2)
    assert payload["fresh"] == [0, 2]  # what this run's own calls gave, the rest cached
    assert (payload["failed_check"], payload["reply"]) == ("contains", "bad")
    assert payload["message"] == "'good' not in the reply"
    low, high = payload["interval"]
    assert 0 < low < 1 / 3 < high < 1
    assert "confirm" not in payload


def test_a_payload_of_a_passing_pool_with_confirming_samples() -> None:
    evaluation = Evaluation((Reply("good"),) * 2 + (Reply("y" * 5000),), (PASS,) * 3)
    payload = result_payload(evaluation, PassCounts(1, 1))
    assert payload is not None
    assert payload["failed_check"] is None and payload["message"] is None
    assert payload["reply"] == "good" and "fresh" not in payload  # all called in this run
    assert payload["confirm"] == [1, 1]
    assert result_payload(None) is None
    long = result_payload(Evaluation((Reply("z" * 5000),), (FAIL,)))
    assert long is not None and len(long["reply"]) <= REPLY_EXCERPT + 10
