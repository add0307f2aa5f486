"""Slowing down wrong keys: after a few failures, each further try of the same client (and
of the same wrong key, from wherever it comes) must wait, doubling up to a minute.

A try made too early is refused with 429 and ``Retry-After`` before the key is even looked
at, so guessing keys at 300 tries a second becomes a handful a minute. Failures are
forgotten ``WINDOW_S`` after the last one; a right key does not clear a client's count
(else one valid read key would let its holder guess an admin key at full speed).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict

from service.errors import ServiceError

FREE_FAILURES = 5  # wrong keys a client may send before it is slowed down
FIRST_DELAY_S = 1.0
MAX_DELAY_S = 60.0
WINDOW_S = 15 * 60.0
MAX_TRACKED = 50_000  # clients and keys remembered (the oldest forgotten beyond)


class FailureThrottle:
    """Failures per subject (a client address, a wrong key's hash), and whether it must wait."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._seen: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._lock = threading.Lock()

    def _wait(self, subject: str, now: float) -> float:
        count, last = self._seen.get(subject, (0, 0.0))
        if now - last > WINDOW_S:
            self._seen.pop(subject, None)
            return 0.0
        if count < FREE_FAILURES:
            return 0.0
        delay = min(FIRST_DELAY_S * 2 ** (count - FREE_FAILURES), MAX_DELAY_S)
        return max(0.0, last + delay - now)

    def check(self, *subjects: str) -> None:
        """429 with ``Retry-After`` while any of ``subjects`` must still wait."""
        now = self._clock()
        with self._lock:
            wait = max((self._wait(s, now) for s in subjects if s), default=0.0)
        if wait > 0:
            raise ServiceError(
                429, "too_many_failures",
                "too many wrong keys from here; wait before trying again",
                {"Retry-After": str(max(1, math.ceil(wait)))},
            )

    def failed(self, *subjects: str) -> None:
        now = self._clock()
        with self._lock:
            for subject in subjects:
                if not subject:
                    continue
                count, last = self._seen.pop(subject, (0, now))
                self._seen[subject] = (0 if now - last > WINDOW_S else count) + 1, now
            while len(self._seen) > MAX_TRACKED:
                self._seen.popitem(last=False)
