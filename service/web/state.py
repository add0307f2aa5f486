"""What every route shares: settings, the memory (store and indexes), the reviews, and how
blocking work is run off the event loop within the request timeout.

Routes get it through ``Depends(get_state)``; ``create_app`` makes one per process.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from aligner.align.embed import configure_cache
from service.config import MIB, Settings
from service.errors import ServiceError
from service.memory.tm import Memory
from service.review.model import Reviews
from service.web.middleware import HeavyLimiter, Slot

log = logging.getLogger("concordia.service")

T = TypeVar("T")


class ServiceState:
    """Settings, the memory, the review table, the heavy-work limiter and the lookup thread."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.memory = Memory(
            settings.data_dir,
            max_segment_chars=settings.max_segment_chars,
            store=settings.store,
            encoder=settings.encoder if settings.semantic_enabled else None,
            semantic_exact_below=settings.semantic_exact_below,
            pool=settings.store_pool,
        )
        self.reviews = Reviews(self.memory.store.reviews())
        # Lookups are short and CPU-bound: run one at a time on their own thread. Several at
        # once in the shared thread pool only fight over the GIL (each switch waits up to
        # 5 ms), which made latency under 8 concurrent clients several times the CPU time.
        self.lookup_thread = ThreadPoolExecutor(1, thread_name_prefix="concordia-lookup")
        configure_cache(settings.embed_cache_path, settings.embed_cache_mb * MIB)
        self.heavy = HeavyLimiter(
            settings.max_heavy, settings.max_heavy_per_key, settings.retry_after_s
        )

    def start(self) -> None:
        self.memory.start()

    def sync(self) -> None:
        """Bring the indexes up to a change a job has committed (on the job's thread)."""
        self._follow(self.memory.sync)

    def after_write(self) -> None:
        """A request wrote to the memory: the indexes follow, without the request waiting
        behind an indexing run (``Memory.after_write``)."""
        self._follow(self.memory.after_write)

    @staticmethod
    def _follow(index_work: Callable[[], None]) -> None:
        """Index work after a committed change. A failure (a full disk while an index is
        written) is logged, not answered: the change is made, the background sync retries."""
        try:
            index_work()
        except Exception:  # noqa: BLE001 - logged; the change is committed
            log.exception("indexing after a change failed; the background sync retries")

    def stop(self) -> None:
        self.lookup_thread.shutdown(wait=False)
        self.memory.stop()

    async def run(
        self,
        fn: Callable[..., T],
        *args,
        on_lookup_thread: bool = False,
        slot: Slot | None = None,
        **kwargs,
    ) -> T:
        """Run blocking ``fn`` off the event loop, within the request timeout.

        A heavy request's ``slot`` stays taken until ``fn`` really ends: the thread cannot be
        stopped, so work abandoned at the timeout still counts against the limits.
        """
        if slot is not None:
            fn = _holding(slot.share(), fn)
        if on_lookup_thread:
            work = asyncio.get_running_loop().run_in_executor(
                self.lookup_thread, functools.partial(fn, *args, **kwargs)
            )
        else:
            work = run_in_threadpool(fn, *args, **kwargs)
        limit = self.settings.request_timeout_s
        try:
            return await asyncio.wait_for(work, limit)
        except TimeoutError:
            raise RequestTimeout(limit) from None

    def tmp_dir(self) -> Path:
        """A scratch folder inside the data folder (same file system as the store)."""
        path = self.settings.data_dir / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path


class RequestTimeout(ServiceError):
    """The request's computing ran past the request timeout (504 unless the route hands the
    work over, as ``/align`` does to a job)."""

    def __init__(self, limit: float):
        super().__init__(504, "timeout", f"the request took longer than {limit:g} s")


@dataclass
class Outcome(Generic[T]):
    """How a piece of work ended: its value or its error, and how long it ran."""

    value: T | None
    error: Exception | None
    seconds: float


class Handoff(Generic[T]):
    """Blocking work that the request running it can hand over when it stops waiting.

    Run it with ``ServiceState.run``. When the request gives up at its time limit it calls
    ``hand_over(take)``: if the work is still running, ``take`` receives its ``Outcome`` in
    the work's own thread when it ends (so the request's heavy slot stays taken until then),
    and nothing is computed twice; if it ended meanwhile, ``hand_over`` returns the outcome.
    """

    def __init__(self, fn: Callable[..., T], *args, **kwargs):
        self._work = functools.partial(fn, *args, **kwargs)
        self._lock = threading.Lock()
        self._outcome: Outcome[T] | None = None
        self._take: Callable[[Outcome[T]], None] | None = None

    def __call__(self) -> T | None:
        started = time.perf_counter()
        try:
            value, error = self._work(), None
        except Exception as exc:  # noqa: BLE001 - handed over or raised below
            value, error = None, exc
        outcome = Outcome(value, error, time.perf_counter() - started)
        with self._lock:
            self._outcome, take = outcome, self._take
        if take is None:
            if error is not None:
                raise error
            return value
        try:
            take(outcome)
        except Exception:  # nobody waits for this thread: log it
            log.exception("handing over the outcome of a request's work failed")
        return None

    def hand_over(self, take: Callable[[Outcome[T]], None]) -> Outcome[T] | None:
        """``take`` gets the outcome when the work ends; None, or the outcome if it has."""
        with self._lock:
            if self._outcome is None:
                self._take = take
            return self._outcome


def _holding(slot: Slot, fn: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(fn)
    def run(*args, **kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        finally:
            slot.release()

    return run


def heavy_work(request: Request) -> Iterator[Slot]:
    """Dependency for heavy routes (after the key check): a slot, or 429 with Retry-After."""
    key = getattr(request.state, "key", None)
    slot = get_state(request).heavy.acquire(key.name if key is not None else "anonymous")
    try:
        yield slot
    finally:
        slot.release()


def get_state(request: Request) -> ServiceState:
    """Dependency: the process's service state."""
    return request.app.state.service


State = Annotated[ServiceState, Depends(get_state)]
"""A route parameter annotated ``State`` receives the service state."""


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
