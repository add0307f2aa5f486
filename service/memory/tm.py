"""The memory one process serves: the store and the two indexes that follow it.

The fuzzy index is loaded from its saved segments (or built from the store) at start and kept in
step with the store by its generation counter, by a background thread and after every write
made through this process; the semantic index, when enabled, likewise. The thread polls every
second, and a shared store's change notices wake it at once, so a write through one replica
reaches the others' indexes in well under a second.
The background thread also saves the fuzzy index once it has caught up after the start and
then every ``SAVE_EVERY_S`` while it changes, so that stopping has little or nothing left to
save, and a stop cut short (Docker kills a container 10 s after asking it to stop) never means
a full rebuild at the next start: that start loads the last save and catches up. Views
(:mod:`service.memory.views`) and jobs read the memory through this object only.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from service.memory.factory import open_store
from service.memory.fuzzy import FuzzyIndex

if TYPE_CHECKING:
    from service.memory.semantic import SemanticIndex

log = logging.getLogger("concordia.service")

_SYNC_INTERVAL_S = 1.0
SAVE_EVERY_S = 300.0  # the fuzzy index is saved in the background at most this often


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
    ):
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)  # the indexes live here whatever the store
        self.store = open_store(data_dir, store=store, max_segment_chars=max_segment_chars)
        self.fuzzy = FuzzyIndex()
        self.semantic: SemanticIndex | None = None
        self.semantic_ready = False
        self._encoder = encoder
        self._semantic_exact_below = semantic_exact_below
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._saved_generation = -1
        self._saved_at = 0.0

    @property
    def _fuzzy_dir(self) -> Path:
        return self.data_dir / "fuzzy-index"

    def start(self) -> None:
        """Load or build the indexes, then keep them in step in the background."""
        if self.fuzzy.load(self._fuzzy_dir, self.store):
            self._saved_generation = self.fuzzy.generation
            self._saved_at = time.monotonic()
        else:
            log.info("no usable saved fuzzy index: building it from the store")
        self.fuzzy.sync(self.store)
        if self._encoder is not None:
            from service.memory.semantic import SemanticIndex

            self.semantic = SemanticIndex(
                self.data_dir, self._encoder, exact_below=self._semantic_exact_below
            )
            self.semantic.load(self.store)
        self._threads = [
            threading.Thread(target=self._keep_up, name="concordia-sync", daemon=True)
        ]
        if self.store.change_notices:
            self._threads.append(
                threading.Thread(target=self._listen, name="concordia-notices", daemon=True)
            )
        for thread in self._threads:
            thread.start()

    def _keep_up(self) -> None:
        """Index units that arrive other ways (jobs, other processes); rebuilds at start."""
        while not self._stop.is_set():
            try:
                self.sync()
                self.semantic_ready = True
                self._save_if_due()
            except Exception:  # logged; the next round tries again
                log.exception("index sync failed")
            self._wake.wait(_SYNC_INTERVAL_S)
            self._wake.clear()

    def _listen(self) -> None:
        """Wake the sync at each change notice (PostgreSQL: a write on any replica)."""
        while not self._stop.is_set():
            if self.store.wait_for_change(_SYNC_INTERVAL_S, self._stop):
                self._wake.set()

    def _save_if_due(self) -> None:
        """Save the fuzzy index if it changed since its last save and that save is old
        (or there is none: the index was built at this start)."""
        generation = self.fuzzy.generation
        if generation == self._saved_generation:
            return
        if self._saved_generation >= 0 and time.monotonic() - self._saved_at < SAVE_EVERY_S:
            return
        self.fuzzy.save(self._fuzzy_dir)
        self._saved_generation, self._saved_at = generation, time.monotonic()

    def sync(self) -> None:
        """Bring both indexes up to the store's generation."""
        self.fuzzy.sync(self.store)
        if self.semantic is not None:
            self.semantic.sync(self.store)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(30)
        self.fuzzy.save(self._fuzzy_dir)
        if self.semantic is not None:
            self.semantic.close()
        self.store.close()
