"""Semantic search: FAISS indexes of segment embeddings, one per language side.

Each unit's Chinese and English segments are embedded (``aligner.align.embed``, L2-normalised, so
inner product = cosine) and kept under the unit's id. A query is compared with segments in
its own language.

On disk the two indexes and their metadata (encoder, the store generation they reflect) are
one generation folder, ``semantic/gen-N/{zh.faiss,en.faiss,meta.json}``, and the file
``semantic/CURRENT`` names the generation in use. A save writes a new folder, then replaces
``CURRENT`` (one atomic rename), then removes older folders: a crash at any point leaves
either the old generation or the new one, never files of two. At start the generation is
also checked (both sides hold the same ids, each once, none past its ``max_id``); whatever
does not match is rebuilt from the store.

Below ``exact_below`` segments the index is exact (``IndexFlatIP``); from there on it is HNSW
(approximate, sub-millisecond). On start the files are loaded and brought up to date with the
store (new units embedded, deleted ones dropped); missing files, another encoder or a store
they do not belong to mean a full rebuild. HNSW cannot remove vectors: deleted ids are
filtered out of results and dropped when the index is next rebuilt.

Queries waiting together are embedded together (micro-batching), which keeps query latency
low when many clients ask at once; a query that is a stored segment takes that segment's
vector instead of being embedded.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import faiss
import numpy as np

from service.memory.store import TMStore, fsync_folder, process_lock

log = logging.getLogger("concordia.service")

LANGS = ("zh", "en")
FOLDER = "semantic"
POINTER = "CURRENT"
META = "meta.json"
_LEGACY = ("semantic-zh.faiss", "semantic-en.faiss", "semantic.json")  # before generations
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 64  # recall@10 0.98 on the bench's 200,000 units; 128 gave 0.999 at 2x the cost
_QUERY_CACHE = 4096  # query embeddings kept: translators look the same segment up again
_ADD_BATCH = 64  # vectors added per lock hold: lookups wait at most one small batch


class _QueryEmbedder:
    """Query embeddings, computed when a lookup first needs one, with every query waiting.

    A lookup's text is registered when its request arrives; the first lookup that needs a
    vector embeds all registered texts in one batch, so under load the requests queued
    behind it find theirs ready (in a batch of 4 each costs 20-30 % less than alone:
    bench/embed_bench.py).
    Recent queries keep their vectors: translators look the same segment up again.
    """

    def __init__(self, encode: Callable[[Sequence[str]], np.ndarray], max_batch: int = 32):
        self._encode = encode
        self._max = max_batch
        self._cache: OrderedDict[str, Future] = OrderedDict()
        self._pending: dict[str, Future] = {}
        self._lock = threading.Lock()  # guards the cache and the pending texts
        self._batch_lock = threading.Lock()  # one batch at a time

    def submit(self, text: str) -> Future:
        """The future embedding of ``text`` (already done for a recent query)."""
        with self._lock:
            done = self._cache.get(text)
            if done is not None:
                self._cache.move_to_end(text)
                return done
            done = self._pending.get(text)  # still waiting, though pushed out of the cache
            if done is None:
                done = self._pending[text] = Future()
            self._cache[text] = done
            if len(self._cache) > _QUERY_CACHE:
                self._cache.popitem(last=False)
        return done

    def vector(self, text: str, future: Future) -> np.ndarray:
        """The embedding of ``text``; computes the waiting batch if nobody has yet."""
        if not future.done():
            self._embed_pending(text)
        return future.result()

    def settle(self, text: str, future: Future, vector: np.ndarray) -> None:
        """Give ``text`` a vector known otherwise (it is a stored segment), if still waiting."""
        with self._lock:
            if self._pending.get(text) is future:
                del self._pending[text]
                future.set_result(vector)

    def _embed_pending(self, text: str) -> None:
        with self._batch_lock:
            with self._lock:
                if text not in self._pending:  # embedded by the batch that held this lock
                    return
                batch = [(text, self._pending.pop(text))]
                while self._pending and len(batch) < self._max:
                    batch.append(self._pending.popitem())
            try:
                vectors = self._encode([t for t, _ in batch])
            except Exception as exc:  # handed to every waiting request, and not kept
                with self._lock:
                    for t, done in batch:
                        if self._cache.get(t) is done:
                            del self._cache[t]
                for _, done in batch:
                    done.set_exception(exc)
                return
            for (_, done), vector in zip(batch, vectors, strict=True):
                done.set_result(np.array(vector, dtype=np.float32))  # not a view of the batch


def _encoders(spec: str) -> dict[str, Callable[[Sequence[str]], np.ndarray]]:
    """Encode functions (texts → L2-normalised float32 rows) for "zh", "en" and "query".

    use-m3 gets one single-threaded instance each: imports embed both sides in parallel,
    a long import never holds up a lookup's embedding, and BLAS threads do not fight each
    other (or other processes) for the cores: on a busy 2-core machine, two single-threaded
    instances embedded 256 units in 1.6 s where one two-threaded instance took 10.6 s. The
    raw encoders are used, not the caching wrapper, which would keep every vector in memory.
    """
    from aligner.align.embed import UseM3Encoder, load_encoder

    if spec == "use-m3":
        return {role: UseM3Encoder(threads=1).encode for role in ("zh", "en", "query")}
    encode = load_encoder(spec, cache=False).inner.encode
    return dict.fromkeys(("zh", "en", "query"), encode)


def _inconsistency(indexes: dict[str, faiss.Index], max_id: int) -> str:
    """Why a saved pair of indexes cannot be used as it is ("" when it can)."""
    ids = {lang: faiss.vector_to_array(ix.id_map) for lang, ix in indexes.items()}
    zh, en = ids["zh"], ids["en"]
    if len(zh) != len(en) or not np.array_equal(np.sort(zh), np.sort(en)):
        return "the two languages hold different units"
    if len(np.unique(zh)) != len(zh):
        return "a unit is indexed twice"
    if len(zh) and int(zh.max()) > max_id:
        return "it holds units past its recorded last one"
    return ""


@contextmanager
def _try_lock(path: Path) -> Iterator[bool]:
    """An exclusive lock between processes if it is free (True), without waiting."""
    with open(path, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _new_index(dim: int, approximate: bool) -> faiss.Index:
    if approximate:
        base = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        base.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        base.hnsw.efSearch = HNSW_EF_SEARCH
    else:
        base = faiss.IndexFlatIP(dim)
    return faiss.IndexIDMap2(base)


def is_approximate(index: faiss.Index) -> bool:
    return isinstance(faiss.downcast_index(index.index), faiss.IndexHNSWFlat)


def all_vectors(index: faiss.Index) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) held by an ``IndexIDMap2``."""
    ids = faiss.vector_to_array(index.id_map).astype(np.int64)
    if not len(ids):
        return ids, np.zeros((0, index.d), np.float32)
    return ids, index.index.reconstruct_n(0, index.ntotal)


class SemanticQuery:
    """One lookup's side of semantic search; the text is embedded when first needed."""

    def __init__(self, index: SemanticIndex, text: str, lang: str):
        self._index = index
        self.text = text
        self.lang = lang
        self._future = index._embedder.submit(text)

    @property
    def vector(self) -> np.ndarray:
        return self._index._embedder.vector(self.text, self._future)

    def same_as(self, unit_id: int) -> None:
        """The text is unit ``unit_id``'s segment: its stored vector serves, unless the
        text was embedded already."""
        if self._future.done():
            return
        stored = self._index.stored_vector(unit_id, self.lang)
        if stored is not None:
            self._index._embedder.settle(self.text, self._future, stored)

    def hits(self, k: int) -> list[tuple[int, float]]:
        """(unit id, cosine) of the ``k`` nearest segments in the query's language."""
        return self._index.search(self.vector, self.lang, k)

    def similarities(self, ids: Sequence[int]) -> dict[int, float]:
        return self._index.similarities(self.vector, self.lang, ids)


class SemanticIndex:
    """The two per-language FAISS indexes of a store, kept in step with it."""

    def __init__(self, data_dir: Path | str, encoder_spec: str, *, exact_below: int = 50_000):
        self.data_dir = Path(data_dir)
        self.spec = encoder_spec
        self.exact_below = exact_below
        self._encode = _encoders(encoder_spec)
        self.dim = int(self._encode["query"](["维度"]).shape[1])
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="concordia-embed-bulk")
        self._indexes: dict[str, faiss.Index] = {
            lang: _new_index(self.dim, False) for lang in LANGS
        }
        self._deleted: set[int] = set()
        self._params = None
        self.generation = -1
        self.max_id = 0
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._unsaved = False  # a save failed (a full disk): the next sync saves again
        self._embedder = _QueryEmbedder(self._encode["query"])
        self._store_identity = ""  # the store the saved files are of (``TMStore.identity``)

    # -- persistence -------------------------------------------------------------------
    @property
    def folder(self) -> Path:
        return self.data_dir / FOLDER

    def _current(self) -> Path | None:
        """The generation folder ``CURRENT`` names, if any."""
        try:
            name = (self.folder / POINTER).read_text().strip()
        except OSError:
            return None
        if not name.startswith("gen-") or "/" in name:
            return None
        return self.folder / name

    def _read_saved(self, store: TMStore, newer_than: int = -1) -> tuple | None:
        """(indexes, meta) saved for this encoder and store, newer than ``newer_than``."""
        current = self._current()
        if current is not None:
            files = {"meta": current / META, **{lang: current / f"{lang}.faiss" for lang in LANGS}}
            where = current.name
        else:  # the files of versions before generation folders, checked the same way
            names = dict(zip((*LANGS, "meta"), _LEGACY, strict=True))
            files = {key: self.data_dir / name for key, name in names.items()}
            where = "of an earlier version"
        try:
            meta = json.loads(files["meta"].read_text())
            if not (
                meta.get("encoder") == self.spec
                and meta.get("dim") == self.dim
                and newer_than < int(meta["generation"]) <= store.generation
                and meta.get("store") == store.identity
                and int(meta["max_id"]) <= store.last_id()
            ):
                return None
            indexes = {lang: faiss.read_index(str(files[lang])) for lang in LANGS}
        except (OSError, ValueError, KeyError, TypeError, RuntimeError):
            return None
        problem = _inconsistency(indexes, int(meta["max_id"]))
        if problem:
            log.warning("semantic index %s: %s; rebuilding it", where, problem)
            return None
        return indexes, meta

    def _adopt(self, indexes: dict, meta: dict) -> None:
        for index in indexes.values():  # saved with the efSearch of its day
            if is_approximate(index):
                faiss.downcast_index(index.index).hnsw.efSearch = HNSW_EF_SEARCH
        with self._lock:
            self._indexes = indexes
            self._deleted = set(meta.get("deleted", []))
            self._set_filter()
        self.generation, self.max_id = int(meta["generation"]), int(meta["max_id"])

    def load(self, store: TMStore) -> bool:
        """Load the saved indexes if they belong to ``store`` and this encoder; else start over.

        Returns whether the saved files were usable. ``sync`` brings them up to date.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._store_identity = store.identity
        with process_lock(self.data_dir / "semantic.lock"):
            saved = self._read_saved(store)
        if saved is None:
            log.info("semantic index missing or stale: rebuilding from the store")
            self._adopt({lang: _new_index(self.dim, False) for lang in LANGS},
                        {"generation": -1, "max_id": 0})
            return False
        self._adopt(*saved)
        return True

    def save(self) -> None:
        """Write a new generation folder, switch ``CURRENT`` to it, remove older ones.

        Called with the process lock held (``sync``), so workers never save at once.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        current = self._current()
        number = int(current.name[4:]) + 1 if current and current.name[4:].isdigit() else 1
        target = self.folder / f"gen-{number}"
        shutil.rmtree(target, ignore_errors=True)  # left by a crash before its switch
        target.mkdir()
        for lang, index in self._indexes.items():
            faiss.write_index(index, str(target / f"{lang}.faiss"))
        meta = {
            "encoder": self.spec,
            "dim": self.dim,
            "store": self._store_identity,
            "generation": self.generation,
            "max_id": self.max_id,
            "deleted": sorted(self._deleted),
        }
        (target / META).write_text(json.dumps(meta))
        fsync_folder(target)
        pointer = self.folder / (POINTER + ".tmp")
        pointer.write_text(target.name)
        os.replace(pointer, self.folder / POINTER)  # the one step that switches generations
        for old in self.folder.glob("gen-*"):
            if old != target:
                shutil.rmtree(old, ignore_errors=True)
        for legacy in _LEGACY:
            (self.data_dir / legacy).unlink(missing_ok=True)

    def close(self) -> None:
        self._pool.shutdown()

    # -- keeping up with the store ------------------------------------------------------
    def __len__(self) -> int:
        return self._indexes["zh"].ntotal - len(self._deleted)

    @property
    def approximate(self) -> bool:
        return is_approximate(self._indexes["zh"])

    def sync(self, store: TMStore, batch: int = 1024) -> int:
        """Embed units added since the last sync, drop deleted ones, save. Returns units added.

        Workers sharing the data folder take turns; one that finds the saved indexes newer
        than its own (another worker embedded the units) loads them instead of embedding.
        """
        with self._sync_lock:
            self._store_identity = store.identity
            generation = store.generation
            if generation == self.generation and not self._unsaved:
                return 0
            with process_lock(self.data_dir / "semantic.lock"):  # held to read, not to embed
                saved = self._read_saved(store, newer_than=self.generation)
            if saved is not None:
                self._adopt(*saved)
                if generation == self.generation:
                    return 0
            with _try_lock(self.data_dir / "semantic-embed.lock") as embedding:
                if not embedding:
                    return 0  # another process embeds; what it saves is adopted next round
                changed = False
                if self.generation >= 0:
                    gone = store.deleted_since(self.generation)
                    if gone:
                        self._forget(gone)
                        changed = True
                added = 0
                for chunk in store.iter_segment_batches(after_id=self.max_id, batch=batch):
                    added += self._add(chunk)
                self.generation = generation
                if added or changed or self._unsaved or self._current() is None:
                    self._unsaved = True
                    with process_lock(self.data_dir / "semantic.lock"):
                        self.save()
                    self._unsaved = False
                return added

    def _forget(self, ids: list[int]) -> None:
        if not self.approximate:
            with self._lock:
                for index in self._indexes.values():
                    index.remove_ids(np.asarray(ids, dtype=np.int64))
            return
        with self._lock:
            self._deleted.update(ids)  # filtered out of results until the next rebuild
            self._set_filter()
        if len(self._deleted) > 0.1 * max(1, self._indexes["zh"].ntotal):
            self._rebuild(approximate=True)

    def _rebuild(self, approximate: bool) -> None:
        """Re-create both indexes from the vectors they hold, minus deleted ids.

        Built beside the live indexes (only ``sync`` changes them, one call at a time) and
        swapped in at the end, so lookups carry on meanwhile.
        """
        deleted = set(self._deleted)
        gone = np.fromiter(deleted, dtype=np.int64, count=len(deleted))
        rebuilt = {}
        for lang, old in self._indexes.items():
            ids, vectors = all_vectors(old)
            if len(gone):
                keep = ~np.isin(ids, gone)
                ids, vectors = ids[keep], vectors[keep]
            rebuilt[lang] = _new_index(self.dim, approximate)
            rebuilt[lang].add_with_ids(vectors, ids)
        with self._lock:
            self._indexes = rebuilt
            self._deleted -= deleted
            self._set_filter()

    def _set_filter(self) -> None:
        """Search parameters leaving out deleted ids (HNSW cannot remove them); lock held."""
        if not self._deleted:
            self._params = None
            return
        batch = faiss.IDSelectorBatch(np.fromiter(self._deleted, dtype=np.int64))
        self._selectors = (batch, faiss.IDSelectorNot(batch))  # kept alive for faiss
        self._params = faiss.SearchParametersHNSW()
        self._params.sel = self._selectors[1]
        self._params.efSearch = HNSW_EF_SEARCH

    def _add(self, rows: list[tuple[int, str, str]]) -> int:
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        texts = {"zh": [r[1] for r in rows], "en": [r[2] for r in rows]}
        done = {lang: self._pool.submit(self._encode[lang], texts[lang]) for lang in LANGS}
        vectors = {lang: np.asarray(f.result(), dtype=np.float32) for lang, f in done.items()}
        if not self.approximate and self._indexes["zh"].ntotal + len(rows) >= self.exact_below:
            self._rebuild(approximate=True)
        for start in range(0, len(rows), _ADD_BATCH):
            with self._lock:
                for lang in LANGS:
                    self._indexes[lang].add_with_ids(
                        vectors[lang][start : start + _ADD_BATCH], ids[start : start + _ADD_BATCH]
                    )
        self.max_id = int(ids[-1])
        return len(rows)

    # -- queries -----------------------------------------------------------------------
    def embed_query(self, text: str) -> np.ndarray:
        future = self._embedder.submit(text)
        return self._embedder.vector(text, future)

    def query(self, text: str, lang: str) -> SemanticQuery:
        """A query to search with; its embedding is batched with others waiting meanwhile."""
        return SemanticQuery(self, text, lang)

    def stored_vector(self, unit_id: int, lang: str) -> np.ndarray | None:
        """The indexed vector of a unit's segment in ``lang`` (None if not indexed yet)."""
        with self._lock:
            try:
                return self._indexes[lang].reconstruct(int(unit_id))
            except RuntimeError:
                return None

    def search(self, vector: np.ndarray, lang: str, k: int) -> list[tuple[int, float]]:
        """The ``k`` nearest segments in ``lang``: (unit id, cosine), best first."""
        # One query gains nothing from OpenMP threads, whose spinning after each search cost
        # ~4 ms of CPU per lookup on 2 cores. The setting is the calling thread's own, so
        # bulk adds on other threads keep theirs.
        faiss.omp_set_num_threads(1)
        with self._lock:
            index = self._indexes[lang]
            if index.ntotal == 0:
                return []
            query = vector.reshape(1, -1)
            k = min(k, index.ntotal)
            if self._params is None:
                sims, ids = index.search(query, k)
            else:
                sims, ids = index.search(query, k, params=self._params)
        return [(int(i), float(s)) for i, s in zip(ids[0], sims[0], strict=True) if i >= 0]

    def similarities(self, vector: np.ndarray, lang: str, ids: Sequence[int]) -> dict[int, float]:
        """Cosine of ``vector`` with the stored segments of the given units."""
        stored = {uid: self.stored_vector(uid, lang) for uid in ids}
        return {uid: float(np.dot(v, vector)) for uid, v in stored.items() if v is not None}

    def stats(self) -> dict:
        return {
            "encoder": self.spec,
            "indexed": len(self),
            "index": "hnsw" if self.approximate else "exact",
            "generation": self.generation,
        }
