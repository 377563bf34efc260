"""How fast the HTTP agent may call: a cap in requests a second, and a concurrency that
follows the provider's rate limit.

`Pacer` is shared by every call of one agent (one per worker process). Before a request it
waits for (1) the end of any pause the provider asked for (``Retry-After`` on a 429/503, or
``x-ratelimit-remaining-requests: 0`` with ``x-ratelimit-reset-requests``), (2) its turn
under the rate (evenly spaced starts): ``--hgd-rate``, or 95 % of the provider's own limit
once a response has said it (``x-ratelimit-limit-requests``, per minute as OpenAI sends it),
whichever is lower, each worker process taking its share; and (3) a free slot under the
adaptive concurrency limit. The limit halves on a 429/503 (at most once per ``COOL_DOWN``) and grows
by one for every ``limit`` successful calls (additive increase, multiplicative decrease),
never above the connections configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Mapping

COOL_DOWN = 0.2  # seconds between two halvings of the concurrency limit
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float | None:
    """Seconds in an OpenAI reset duration: ``"1s"``, ``"20ms"``, ``"6m0s"``, ``"1.5s"``."""
    parts = _DURATION.findall(text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip().replace(" ", ""):
        return None
    return sum(float(number) * _UNIT[unit] for number, unit in parts)


class Pacer:
    """Rate cap, provider pauses and adaptive concurrency for one agent's calls."""

    def __init__(
        self,
        max_concurrency: int,
        rate: float | None = None,
        max_pause: float = 30.0,
        share: float = 1.0,
    ) -> None:
        self.share = share  # this process's share of the provider's limit
        self.max_concurrency = max_concurrency
        self.max_pause = max_pause  # the longest pause a provider's header can ask for
        self.limit = float(max_concurrency)
        self.rate = rate
        self.in_flight = 0
        self.paused_until = 0.0
        self._next_start = 0.0
        self._last_cut = -COOL_DOWN
        self._freed: asyncio.Condition | None = None
        self.learned: float | None = None  # the provider's limit, as its headers say
        self.limited = 0  # responses that said "too many requests"

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one request's place: wait for pauses, the rate cap and the limit."""
        if self._freed is None:
            self._freed = asyncio.Condition()
        async with self._freed:
            await self._freed.wait_for(lambda: self.in_flight < max(1, int(self.limit)))
            self.in_flight += 1
        try:
            await self._wait_turn()
            yield
        finally:
            async with self._freed:
                self.in_flight -= 1
                self._freed.notify_all()

    async def _wait_turn(self) -> None:
        now = time.monotonic()
        start = max(now, self.paused_until)
        rate = self.effective_rate
        if rate:
            start = max(start, self._next_start)
            self._next_start = start + 1.0 / rate
        if start > now:
            await asyncio.sleep(start - now)

    @property
    def effective_rate(self) -> float | None:
        """Requests a second this process keeps to: the cap, the provider's, the lower."""
        rates = [r for r in (self.rate, self.learned) if r]
        return min(rates) if rates else None

    def observe(self, status: int, headers: Mapping[str, str], retry_after: float | None) -> None:
        """Learn from a response: slow down on 429/503, pause when the provider says to,
        grow again on success."""
        now = time.monotonic()
        per_minute = headers.get("x-ratelimit-limit-requests")
        if per_minute is not None:
            with contextlib.suppress(ValueError):
                self.learned = 0.95 * float(per_minute) / 60.0 * self.share or None
        if status in (429, 503):
            self.limited += 1
            if now - self._last_cut >= COOL_DOWN:
                self.limit = max(1.0, self.limit / 2.0)
                self._last_cut = now
            if retry_after is not None:
                self.paused_until = max(self.paused_until, now + retry_after)
            return
        if 200 <= status < 300:
            self.limit = min(float(self.max_concurrency), self.limit + 1.0 / self.limit)
        remaining = headers.get("x-ratelimit-remaining-requests")
        reset = headers.get("x-ratelimit-reset-requests")
        if remaining is not None and remaining.strip() == "0" and reset is not None:
            wait = parse_duration(reset)
            if wait is not None:
                self.paused_until = max(self.paused_until, now + min(wait, self.max_pause))
