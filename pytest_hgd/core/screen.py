"""The screened design of ``--hgd-samples=auto`` and its exact conditional test.

Each pair first draws a *screen*: ``SCREEN`` candidate samples, and baseline samples up to
``SCREEN`` unless the cache already holds more (a warm baseline's pool is its screen). A pair
*stops* there, ``kept`` (or ``new_pass`` without a baseline), when the candidate passed every
screen sample and the baseline's screen mostly passed; any other pair *goes on* and draws the
rest of its K samples under each prompt. A pair that went on is tested with Fisher's exact
test made conditional on having gone on: under "the candidate passes as often as the
baseline", given the passes under both prompts together, the arrangement of the passes over
all the samples is uniform, so the chance of each candidate count *and* of going on is a sum
of products of binomial coefficients; dividing by the chance of going on gives the exact
null distribution of the candidate's passes among the pairs that went on. Every sample
counts, the screen's too, and the selection cannot bias the test. The argument (and why a
candidate that passes more often only makes the test more conservative) is in
``docs/statistics.md``; the family correction over the pairs that went on is
``stats.decide``'s, fed these distributions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate

SCREEN = 2  # candidate samples of the screen, and baseline samples when none are cached
ScreenKey = tuple[str, int, int, int, int, int]  # "screen", design..., passes under both


@dataclass(frozen=True)
class Design:
    """How many samples a pair draws: at the screen, and after it when it goes on."""

    screen_candidate: int
    more_candidate: int
    screen_baseline: int
    more_baseline: int

    def __post_init__(self) -> None:
        sizes = (
            self.screen_candidate,
            self.more_candidate,
            self.screen_baseline,
            self.more_baseline,
        )
        if min(sizes) < 0 or self.screen_candidate < 1:
            raise ValueError(f"a screened design needs a candidate screen and sizes >= 0: {sizes}")

    def goes_on(self, candidate_passes: int, baseline_passes: int) -> bool:
        """False (the pair stops) when the candidate passed every screen sample and the
        baseline's screen mostly passed (none given: passed)."""
        return not (
            candidate_passes == self.screen_candidate
            and 2 * baseline_passes >= self.screen_baseline
        )

    def key(self, passes: int) -> ScreenKey:
        """The test's key for a pair that went on with ``passes`` under both prompts."""
        return (
            "screen",
            self.screen_candidate,
            self.more_candidate,
            self.screen_baseline,
            self.more_baseline,
            passes,
        )


def design_for(samples: int, cached_baseline: int | None, screen: int = SCREEN) -> Design:
    """The design of a pair of K = ``samples``: ``cached_baseline`` is how many baseline
    samples the cache holds for it (None: no baseline prompt); ``screen``: the screen's
    candidate samples (ini ``hgd_screen_samples``)."""
    screen = min(screen, samples)
    if cached_baseline is None:
        return Design(screen, samples - screen, 0, 0)
    screen_baseline = max(cached_baseline, screen)
    return Design(screen, samples - screen, screen_baseline, max(0, samples - screen_baseline))


@lru_cache(maxsize=16384)
def screened_tails(key: ScreenKey) -> tuple[int, tuple[float, ...], tuple[float, ...]]:
    """The null distribution of the candidate's passes, given the passes under both prompts
    and that the pair went on; the same shape as ``stats._tails``: the smallest count
    ``low`` and, for x = low, low + 1, ..., P(X <= x) and P(X >= x)."""
    _, screen_c, more_c, screen_b, more_b, total = key
    design = Design(screen_c, more_c, screen_b, more_b)
    weights: dict[int, int] = {}
    for s_c in range(screen_c + 1):
        for s_b in range(screen_b + 1):
            if not design.goes_on(s_c, s_b):
                continue
            ways = math.comb(screen_c, s_c) * math.comb(screen_b, s_b)
            for r_c in range(more_c + 1):
                r_b = total - s_c - s_b - r_c
                if 0 <= r_b <= more_b:
                    x = s_c + r_c
                    weights[x] = weights.get(x, 0) + ways * math.comb(more_c, r_c) * math.comb(
                        more_b, r_b
                    )
    if not weights:
        raise ValueError(f"no outcome with {total} passes goes on under the design {design}")
    low = min(weights)
    counts = [weights.get(x, 0) for x in range(low, max(weights) + 1)]
    whole = sum(counts)
    lower = tuple(c / whole for c in accumulate(counts))
    upper = tuple(c / whole for c in accumulate(reversed(counts)))[::-1]
    return low, lower, upper
