"""The memory one process serves: the store and the two indexes that follow it.

The fuzzy index maps its segment files (:mod:`service.memory.fuzzy_files`) at start and is
kept in step with the store by its generation counter, by a background thread and after every
write made through this process; the semantic index, when enabled, likewise. The thread polls
every second, and a shared store's change notices wake it at once, so a write through one
replica reaches the others' indexes in well under a second.
One process, the indexer, writes new units to the files in large batches as they arrive, so
a stop cut short (Docker kills a container 10 s after asking it to stop) never means a full
rebuild at the next start: that start maps the files and indexes only the units newer than
them (fewer than a flush's worth). Views (:mod:`service.memory.views`) and jobs read the memory
through this object only.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from service.config import StorePool
from service.memory.factory import open_store
from service.memory.fuzzy import FuzzyIndex

if TYPE_CHECKING:
    from service.memory.semantic import SemanticIndex

log = logging.getLogger("concordia.service")

FUZZY_FOLDER = "fuzzy-index"
_SYNC_INTERVAL_S = 1.0
_REQUEST_MOST = 1000  # new units a request indexes itself; more are the background's


class Memory:
    """The store (``store``'s PostgreSQL database, else SQLite in ``data_dir``), its fuzzy
    index and (``encoder`` given) its semantic index, both kept in ``data_dir``."""

    def __init__(
        self,
        data_dir: Path,
        *,
        max_segment_chars: int,
        store: str | None = None,
        encoder: str | None = None,
        semantic_exact_below: int = 50_000,
        pool: StorePool | None = None,
    ):
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)  # the indexes live here whatever the store
        self.store = open_store(
            data_dir, store=store, max_segment_chars=max_segment_chars, pool=pool
        )
        self.fuzzy = FuzzyIndex(data_dir / FUZZY_FOLDER)
        self.semantic: SemanticIndex | None = None
        self.semantic_ready = False
        self._encoder = encoder
        self._semantic_exact_below = semantic_exact_below
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Load or build the indexes, then keep them in step in the background."""
        if not self.fuzzy.load(self.store):
            log.info("no usable fuzzy index files: the indexer builds them from the store")
        self.fuzzy.sync(self.store)
        if self._encoder is not None:
            from service.memory.semantic import SemanticIndex

            self.semantic = SemanticIndex(
                self.data_dir, self._encoder, exact_below=self._semantic_exact_below
            )
            self.semantic.load(self.store)
        self._threads = [
            threading.Thread(target=self._keep_up, args=(self._sync_fuzzy,),
                             name="concordia-sync", daemon=True),
        ]
        if self.semantic is not None:  # an embedding run never holds the fuzzy index back
            self._threads.append(threading.Thread(
                target=self._keep_up, args=(self._sync_semantic,), name="concordia-embed",
                daemon=True,
            ))
        if self.store.change_notices:
            self._threads.append(
                threading.Thread(target=self._listen, name="concordia-notices", daemon=True)
            )
        for thread in self._threads:
            thread.start()

    def _keep_up(self, sync) -> None:
        """Index units that arrive other ways (jobs, other processes); rebuilds at start."""
        while not self._stop.is_set():
            try:
                sync()
            except Exception:  # logged; the next round tries again
                log.exception("index sync failed")
            self._wake.wait(_SYNC_INTERVAL_S)
            self._wake.clear()

    def _listen(self) -> None:
        """Wake the sync at each change notice (PostgreSQL: a write on any replica)."""
        while not self._stop.is_set():
            if self.store.wait_for_change(_SYNC_INTERVAL_S, self._stop):
                self._wake.set()

    def _sync_fuzzy(self) -> None:
        self.fuzzy.sync(self.store)

    def _sync_semantic(self) -> None:
        self.semantic.sync(self.store)
        self.semantic_ready = True

    def sync(self) -> None:
        """Bring both indexes up to the store's generation."""
        self.fuzzy.sync(self.store)
        if self.semantic is not None:
            self.semantic.sync(self.store)

    def after_write(self) -> None:
        """What a request that wrote does: the fuzzy index takes its deletions and (when
        there are few) its new units, unless a sync is running; the background thread,
        woken, does the rest. Never waits behind an indexing run."""
        self.fuzzy.sync(self.store, wait=False, most=_REQUEST_MOST)
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(30)
        self.fuzzy.close()
        if self.semantic is not None:
            self.semantic.close()
        self.store.close()
