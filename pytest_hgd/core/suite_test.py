"""The suite-level exact sign test: did the candidate worsen more pairs than it improved?"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pytest_hgd.core.stats import PassCounts


def sign_test(improved: int, worsened: int) -> float:
    """Exact one-sided p-value that the candidate is worse: P(Bin(n, 1/2) >= worsened).

    n = improved + worsened, the pairs whose result changed; 1.0 when none did.
    """
    if improved < 0 or worsened < 0:
        raise ValueError(f"counts must be >= 0, got improved={improved}, worsened={worsened}")
    changed = improved + worsened
    if changed == 0:
        return 1.0
    return sum(math.comb(changed, j) for j in range(worsened, changed + 1)) / (1 << changed)


def suite_comparison(
    pairs: Sequence[tuple[PassCounts | None, PassCounts]],
) -> dict[str, int | float]:
    """Paired sign test over the suite: pairs with a higher vs lower candidate pass rate."""
    improved = worsened = unchanged = 0
    for base, cand in pairs:
        if base is None:
            continue
        # Compare passes/runs exactly, without float rounding.
        order = cand.passes * base.runs - base.passes * cand.runs
        if order > 0:
            improved += 1
        elif order < 0:
            worsened += 1
        else:
            unchanged += 1
    return {
        "improved": improved,
        "worsened": worsened,
        "unchanged": unchanged,
        "p_value": sign_test(improved, worsened),
    }
