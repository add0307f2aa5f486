"""Semantic search: FAISS indexes of segment embeddings, one per language side.

Each unit's Chinese and English segments are embedded (``aligner.align.embed``, L2-normalised, so
inner product = cosine) and kept under the unit's id. A query is compared with segments in
its own language.

On disk (``semantic/``) the vectors are float16 rows, a file per side, beside the unit ids of
the rows (ascending); from ``exact_below`` units on each side also has its trained quantiser
and the rows' codes; deleted ids are a tombstone file. All of these grow by appending.
``manifest.json`` names the files in use and how many rows and tombstones of each are valid,
with the encoder, the store they belong to (``TMStore.identity``) and the store generation and
last id they reflect. A save appends the new rows past the valid ones, flushes the files, then
replaces the manifest (one atomic rename): a crash at any point leaves the previous manifest,
whose counts ignore whatever was appended after it, never a mix of two states. A rebuild (a
new quantiser, deleted rows dropped) writes files under new names; files no manifest names any
more are removed after the switch (workers still mapping them keep reading them). A worker
that finds a newer manifest naming the same files reads only the rows and tombstones added.

Below ``exact_below`` units the search is exact (``IndexFlatIP`` of the vectors, in memory).
From there on it is IVF-PQ (``QUANTISER``: 32 bytes of 4-bit codes + an 8-byte id per vector
and side in memory; the float16 vectors stay on disk, mapped): the ``RERANK`` best candidates
of the quantised search are re-scored exactly from the float16 vectors, so hits and scores
are cosines. The
quantiser is trained on a sample of the vectors when the memory reaches ``exact_below`` units,
and again whenever it has grown ``RETRAIN_GROWTH``-fold (inverted lists in step with its size).
Deleted ids are filtered out of results, and dropped from the files once they are a tenth of
the rows. Files of the earlier format (one FAISS index per side) are converted once, without
embedding anything again.

Queries waiting together are embedded together (micro-batching), which keeps query latency
low when many clients ask at once; a query that is a stored segment takes that segment's
vector instead of being embedded.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import secrets
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from pathlib import Path

import faiss
import numpy as np

from service.memory.store import TMStore, process_lock

log = logging.getLogger("concordia.service")

LANGS = ("zh", "en")
FOLDER = "semantic"
MANIFEST = "manifest.json"
FORMAT = 2
_LEGACY_POINTER = "CURRENT"  # format 1: semantic/CURRENT names gen-N/{zh,en}.faiss + meta.json
_LEGACY = ("semantic-zh.faiss", "semantic-en.faiss", "semantic.json")  # before generations
# The product quantiser after "IVF{lists},": 4-bit codes ("x4fs") are scanned in blocks of 32
# with SIMD lookup tables, several times faster than 8-bit codes (bench/semantic_bench.py).
# A quantiser of another kind in saved files is read as it is and trained again at the next
# sync that adds rows.
QUANTISER = "PQ64x4fs"
RERANK = 200  # candidates of the quantised search re-scored from the float16 vectors
PROBE_SHARE = 0.25  # of the inverted lists searched: USE-m3 neighbours spread across lists
# (bench/semantic_bench.py: recall@10 against exact search beside latency, by share)
_MIN_SCANNED = 50_000  # codes scanned at least (about 1 ms): small memories nearly exhaustively
RETRAIN_GROWTH = 8  # the quantiser is trained again when the memory has grown this much
COMPACT_SHARE = 0.1  # deleted rows dropped from the files once they are this share
_TRAIN_MAX = 200_000  # vectors sampled to train a quantiser
_CHUNK = 65_536  # rows read, encoded or copied at a time
_QUERY_CACHE = 4096  # query embeddings kept: translators look the same segment up again
_ADD_BATCH = 64  # vectors added per lock hold: lookups wait at most one small batch
_CHECKPOINT = 50_000  # units embedded between saves in a long run: a crash loses at most these

Rows = list[tuple[int, str, str]]  # (unit id, Chinese, English), as the store gives them
# Chunks of units → each chunk with its vectors by side, in the chunks' order.
ChunkEmbedder = Callable[[Iterable[Rows]], Iterator[tuple[Rows, dict[str, np.ndarray]]]]



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


_NO_LOCK = nullcontext()


def _lists(rows: int) -> int:
    """Inverted lists for a memory of ``rows``: about √rows, a power of two."""
    return int(min(65_536, max(8, 2 ** round(math.log2(max(rows, 2)) / 2))))


def _kind(index: faiss.IndexIVFPQ) -> str:
    """The ``QUANTISER`` setting ``index`` was made with."""
    fast = isinstance(index, faiss.IndexIVFPQFastScan)
    return f"PQ{index.pq.M}x4fs" if fast else f"PQ{index.pq.M}"


def _new_quantiser(dim: int, rows: int, sample: np.ndarray) -> faiss.IndexIVF:
    """IVF-PQ (``QUANTISER``) for ``rows`` vectors trained on ``sample`` (unit rows of them).

    8-bit codes ("PQ64") get fewer bits when the sample is too small to train 256 centroids
    per sub-vector (tests). Fast-scan codes are not relative to their list's centroid: with
    inner product that lost recall (0.91 against 0.96 on 50,000 real vectors).
    """
    lists = min(_lists(rows), max(1, len(sample) // 39))
    if QUANTISER.endswith("fs"):
        index = faiss.index_factory(dim, f"IVF{lists},{QUANTISER}", faiss.METRIC_INNER_PRODUCT)
        index.by_residual = False
    else:
        bits = int(min(8, max(4, math.floor(math.log2(max(2, len(sample) // 39))))))
        index = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, lists,
                                 int(QUANTISER.removeprefix("PQ")), bits,
                                 faiss.METRIC_INNER_PRODUCT)
    index.cp.min_points_per_centroid = index.pq.cp.min_points_per_centroid = 1  # no warnings
    index.train(sample)
    return index


def _add_codes(index: faiss.IndexIVF, codes: np.ndarray, ids: np.ndarray) -> None:
    """Add rows by their codes (``sa_encode``'s: list number, then PQ code).

    Fast-scan lists hold codes interleaved in blocks of 32, and ``add_sa_codes`` copies the
    codes as given, so they are packed here, list by list, into the lists' own buffers.
    """
    if not isinstance(index, faiss.IndexIVFFastScan):
        index.add_sa_codes(codes, ids)
        return
    coarse = index.coarse_code_size()
    lists = np.zeros(len(codes), np.int64)
    for byte in range(coarse):  # little-endian list numbers
        lists |= codes[:, byte].astype(np.int64) << (8 * byte)
    order = np.argsort(lists, kind="stable")
    bounds = np.searchsorted(lists[order], np.arange(index.nlist + 1))
    packer, invlists = index.get_CodePacker(), index.invlists
    per, block = packer.nvec, packer.block_size
    for number in np.flatnonzero(np.diff(bounds)):
        rows = order[bounds[number] : bounds[number + 1]]
        old = invlists.list_size(int(number))
        new = old + len(rows)
        invlists.resize(int(number), new)  # (add_entries overruns past a multiple of 1,024)
        faiss.rev_swig_ptr(invlists.get_ids(int(number)), new)[old:] = ids[rows]
        packed = faiss.rev_swig_ptr(invlists.get_codes(int(number)), -(-new // per) * block)
        flat = np.ascontiguousarray(codes[rows, coarse:])
        head = min(len(rows), -old % per)  # into the last block begun, code by code
        for i in range(head):
            packer.pack_1_c(faiss.swig_ptr(flat[i]), old + i, faiss.swig_ptr(packed))
        rest = np.zeros((-(-(len(rows) - head) // per) * per, packer.code_size), np.uint8)
        rest[: len(rows) - head] = flat[head:]
        first = (old + head) // per
        for b in range(len(rest) // per):  # whole blocks
            packer.pack_all(faiss.swig_ptr(rest[b * per :]),
                            faiss.swig_ptr(packed[(first + b) * block :]))
    index.ntotal += len(codes)


def _unit(rows: np.ndarray) -> np.ndarray:
    """float32 copies of (float16) rows, scaled back to length 1."""
    out = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms > 0, norms, 1)


def _write_at(path: Path, offset: int, data: np.ndarray) -> None:
    """Write ``data`` at byte ``offset`` of ``path`` (whatever lay there, past the rows the
    manifest counts, was never valid); the file never shrinks, so maps stay good."""
    view = memoryview(np.ascontiguousarray(data)).cast("B")
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        done = 0
        while done < len(view):
            done += os.pwrite(handle, view[done:], offset + done)
    finally:
        os.close(handle)


def _map(path: Path, dtype: type, rows: int, width: int = 0) -> np.ndarray:
    """The first ``rows`` rows of a file, mapped read-only (ValueError if it is shorter)."""
    shape = (rows, width) if width else (rows,)
    if rows == 0:
        return np.zeros(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=shape)


def _fsync(path: Path) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


class _Files:
    """What one process holds: the files it reads and appends to, their valid rows, and the
    in-memory index of each side built from them."""

    def __init__(self, names: dict, rows: int = 0, tombstones: int = 0, trained_rows: int = 0):
        self.names = names  # "ids", "deleted", "zh", "en"; "zh.codes", "zh.quantiser", ...
        self.rows = rows
        self.tombstones = tombstones
        self.trained_rows = trained_rows  # rows when the quantiser was trained; 0: exact
        self.ids = np.zeros(0, np.int64)
        self.vectors: dict[str, np.ndarray] = {}
        self.indexes: dict[str, faiss.Index] = {}
        self.deleted: set[int] = set()

    @classmethod
    def fresh(cls) -> _Files:
        tag = secrets.token_hex(4)
        names = {"ids": f"ids-{tag}.i64", "deleted": f"deleted-{tag}.i64"}
        names.update({lang: f"{lang}-{tag}.f16" for lang in LANGS})
        return cls(names)

    @property
    def quantised(self) -> bool:
        return self.trained_rows > 0

    def same_files(self, other: dict) -> bool:
        return self.names == other

    def row_of(self, unit_id: int) -> int | None:
        row = int(np.searchsorted(self.ids, unit_id))
        if row < len(self.ids) and int(self.ids[row]) == unit_id:
            return row
        return None


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
    """The two per-language indexes of a store and their files, kept in step with it."""

    def __init__(self, data_dir: Path | str, encoder_spec: str, *, exact_below: int = 50_000):
        self.data_dir = Path(data_dir)
        self.spec = encoder_spec
        self.exact_below = exact_below
        self._encode = _encoders(encoder_spec)
        self.dim = int(self._encode["query"](["维度"]).shape[1])
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="concordia-embed-bulk")
        self._files = self._empty()
        self._params: faiss.SearchParametersIVF | None = None
        self.generation = -1
        self.max_id = 0
        self._serial = 0  # the manifest this process's state comes from (0: none)
        self._lock = threading.Lock()  # guards ``_files`` and ``_params`` against lookups
        self._sync_lock = threading.Lock()
        self._unsaved = False  # a save failed (a full disk): the next sync saves again
        self._embedder = _QueryEmbedder(self._encode["query"])
        self._store_identity = ""  # the store the saved files are of (``TMStore.identity``)

    # -- persistence -------------------------------------------------------------------
    @property
    def folder(self) -> Path:
        return self.data_dir / FOLDER

    def _empty(self) -> _Files:
        files = _Files.fresh()
        files.vectors = {lang: np.zeros((0, self.dim), np.float16) for lang in LANGS}
        files.indexes = {lang: faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim)) for lang in LANGS}
        return files

    def _read_manifest(self, store: TMStore) -> dict | None:
        """The manifest, if it is of this format, encoder and store."""
        try:
            meta = json.loads((self.folder / MANIFEST).read_text())
            if (
                meta.get("format") == FORMAT
                and meta.get("encoder") == self.spec
                and meta.get("dim") == self.dim
                and int(meta["generation"]) <= store.generation
                and meta.get("store") == store.identity
                and int(meta["max_id"]) <= store.last_id()
            ):
                return meta
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return None

    def _open(self, meta: dict) -> _Files | None:
        """The files ``meta`` names, mapped, with their indexes built (None if damaged).

        Called with the process lock held: no save removes the files meanwhile."""
        files = _Files(dict(meta["files"]), int(meta["rows"]), int(meta["tombstones"]),
                       int(meta["trained_rows"]))
        try:
            files.ids = _map(self.folder / files.names["ids"], np.int64, files.rows)
            files.vectors = {
                lang: _map(self.folder / files.names[lang], np.float16, files.rows, self.dim)
                for lang in LANGS
            }
            gone = np.fromfile(self.folder / files.names["deleted"], np.int64, files.tombstones)
            if len(gone) < files.tombstones:
                raise ValueError("its tombstones are cut short")
            if files.rows and (
                np.any(np.diff(files.ids) <= 0) or int(files.ids[-1]) > int(meta["max_id"])
            ):
                raise ValueError("its ids are out of order or past its last unit")
            files.deleted = set(gone.tolist())
            for lang in LANGS:
                files.indexes[lang] = self._build(files, lang, 0, files.rows)
        except (OSError, ValueError, RuntimeError) as exc:
            log.warning("semantic index files unusable (%s); rebuilding them", exc)
            return None
        return files

    def _build(self, files: _Files, lang: str, start: int, stop: int,
               index: faiss.Index | None = None) -> faiss.Index:
        """``index`` (a new one if None) with rows ``start:stop`` of ``files`` added; a live
        index a few thousand rows per lock hold."""
        live = index is not None
        if index is None:
            if files.quantised:
                index = faiss.read_index(str(self.folder / files.names[f"{lang}.quantiser"]))
            else:
                index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        if files.quantised:
            codes = _map(self.folder / files.names[f"{lang}.codes"], np.uint8, stop,
                         index.sa_code_size())
        step = _ADD_BATCH * 64 if live else _CHUNK
        for lo in range(start, stop, step):
            ids = np.asarray(files.ids[lo : lo + step])
            if files.quantised:  # deleted rows stay, filtered out of results
                rows = np.ascontiguousarray(codes[lo : lo + step])
            else:
                keep = ~np.isin(ids, list(files.deleted)) if files.deleted else slice(None)
                rows, ids = _unit(files.vectors[lang][lo : lo + step][keep]), ids[keep]
            with self._lock if live else _NO_LOCK:
                if files.quantised:
                    _add_codes(index, rows, ids)
                else:
                    index.add_with_ids(rows, ids)
        return index

    def _catch_up(self, store: TMStore) -> None:
        """Take what another process saved since this one's state: only the rows and
        tombstones it appended, when it appended to the files this process holds."""
        with process_lock(self.data_dir / "semantic.lock"):
            meta = self._read_manifest(store)
            if meta is None or int(meta["serial"]) == self._serial:
                return
            files = self._files
            if (
                files.names == meta["files"]
                and int(meta["trained_rows"]) == files.trained_rows
                and int(meta["rows"]) >= files.rows
                and int(meta["tombstones"]) >= files.tombstones
            ):
                self._extend(meta)
            else:
                opened = self._open(meta)
                if opened is None:
                    return
                self._adopt(opened)
        self._unsaved = False  # what this process had not saved, the other one has
        self.generation, self.max_id = int(meta["generation"]), int(meta["max_id"])
        self._serial = int(meta["serial"])

    def _extend(self, meta: dict) -> None:
        """Take the rows and tombstones another process appended to this one's files."""
        files = self._files
        start, rows, tombstones = files.rows, int(meta["rows"]), int(meta["tombstones"])
        ids = _map(self.folder / files.names["ids"], np.int64, rows)
        vectors = {lang: _map(self.folder / files.names[lang], np.float16, rows, self.dim)
                   for lang in LANGS}
        with open(self.folder / files.names["deleted"], "rb") as handle:
            handle.seek(files.tombstones * 8)
            gone = np.fromfile(handle, np.int64, tombstones - files.tombstones).tolist()
        with self._lock:
            files.ids, files.vectors = ids, vectors
        for lang in LANGS:
            self._build(files, lang, start, rows, files.indexes[lang])
        with self._lock:
            files.rows = rows
            self._set_probe()
        self._forget_in_memory(gone)
        files.tombstones = tombstones

    def _adopt(self, files: _Files) -> None:
        with self._lock:
            self._files = files
            self._set_filter()

    def load(self, store: TMStore) -> bool:
        """Open the saved files if they belong to ``store`` and this encoder; else start over.

        Returns whether saved files were usable. ``sync`` brings them up to date.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._store_identity = store.identity
        with process_lock(self.data_dir / "semantic.lock"):
            meta = self._read_manifest(store)
            opened = self._open(meta) if meta is not None else None
            if opened is not None:
                self._adopt(opened)
                self.generation, self.max_id = int(meta["generation"]), int(meta["max_id"])
                self._serial = int(meta["serial"])
                return True
            self._adopt(self._empty())
            self.generation, self.max_id, self._serial = -1, 0, 0
            if meta is None:
                with _try_lock(self.data_dir / "semantic-embed.lock") as free:
                    if free and self._convert(store):  # nobody else writes files meanwhile
                        return True
        log.info("semantic index missing or stale: rebuilding from the store")
        return False

    def _convert(self, store: TMStore) -> bool:
        """Files of the earlier format (a FAISS index per side) written in this one, their
        vectors kept: nothing embedded again. Whether there were any of this store."""
        try:
            name = (self.folder / _LEGACY_POINTER).read_text().strip()
            current = self.folder / name if name.startswith("gen-") and "/" not in name else None
        except OSError:
            current = None
        if current is not None:
            paths = {"meta": current / "meta.json"}
            paths.update({lang: current / f"{lang}.faiss" for lang in LANGS})
        else:
            paths = {key: self.data_dir / n for key, n in zip((*LANGS, "meta"), _LEGACY,
                                                             strict=True)}
        try:
            meta = json.loads(paths["meta"].read_text())
            if not (
                meta.get("encoder") == self.spec
                and meta.get("dim") == self.dim
                and int(meta["generation"]) <= store.generation
                and meta.get("store") == store.identity
                and int(meta["max_id"]) <= store.last_id()
            ):
                return False
            saved = {}
            for lang in LANGS:
                index = faiss.read_index(str(paths[lang]))
                ids = faiss.vector_to_array(index.id_map).astype(np.int64)
                vectors = index.index.reconstruct_n(0, index.ntotal)
                order = np.argsort(ids)
                saved[lang] = ids[order], vectors[order]
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, AttributeError):
            return False
        ids = saved["zh"][0]
        if not np.array_equal(ids, saved["en"][0]) or np.any(np.diff(ids) <= 0):
            return False
        keep = ~np.isin(ids, list(meta.get("deleted", [])))
        self.folder.mkdir(parents=True, exist_ok=True)
        for lo in range(0, len(ids), _CHUNK):
            part = slice(lo, lo + _CHUNK)
            self._append(ids[part][keep[part]],
                         {lang: saved[lang][1][part][keep[part]] for lang in LANGS})
        self.generation, self.max_id = int(meta["generation"]), int(meta["max_id"])
        self.save()
        log.info("semantic index converted to files of format %d", FORMAT)
        return True

    def save(self) -> None:
        """Flush the files, switch the manifest to them (one rename), remove what it no
        longer names.

        Called with the process lock held (``sync``), so workers never save at once.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        files = self._files
        for name in files.names.values():  # files with no rows yet are made empty
            os.close(os.open(self.folder / name, os.O_WRONLY | os.O_CREAT, 0o644))
            _fsync(self.folder / name)
        try:
            before = int(json.loads((self.folder / MANIFEST).read_text())["serial"])
        except (OSError, ValueError, KeyError, TypeError):
            before = 0
        serial = max(before, self._serial) + 1  # never one another state was saved under
        meta = {
            "format": FORMAT,
            "encoder": self.spec,
            "dim": self.dim,
            "store": self._store_identity,
            "generation": self.generation,
            "max_id": self.max_id,
            "serial": serial,
            "rows": files.rows,
            "tombstones": files.tombstones,
            "trained_rows": files.trained_rows,
            "files": files.names,
        }
        staged = self.folder / (MANIFEST + ".tmp")
        staged.write_text(json.dumps(meta))
        _fsync(staged)
        os.replace(staged, self.folder / MANIFEST)  # the one step that switches states
        _fsync(self.folder)
        self._serial = serial
        named = {*files.names.values(), MANIFEST}
        for path in self.folder.iterdir():
            if path.name not in named:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        for legacy in _LEGACY:
            (self.data_dir / legacy).unlink(missing_ok=True)

    def close(self) -> None:
        self._pool.shutdown()

    # -- keeping up with the store ------------------------------------------------------
    def __len__(self) -> int:
        files = self._files
        return files.rows - len(files.deleted)

    @property
    def approximate(self) -> bool:
        return self._files.quantised

    def sync(
        self, store: TMStore, batch: int = 1024, *, embed: ChunkEmbedder | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Embed units added since the last sync, drop deleted ones, save. Returns units added.

        Workers sharing the data folder take turns; one that finds a newer manifest (another
        worker embedded the units) takes its files instead of embedding. ``embed`` embeds the
        chunks of units elsewhere (``concordia-tm embed`` on a Dask cluster), in their order;
        ``progress`` is told the units of each chunk appended.
        """
        with self._sync_lock:
            self._store_identity = store.identity
            generation = store.generation
            if generation == self.generation and not self._unsaved:
                return 0
            self._catch_up(store)
            if generation == self.generation and not self._unsaved:
                return 0
            with _try_lock(self.data_dir / "semantic-embed.lock") as embedding:
                if not embedding:
                    return 0  # another process embeds; what it saves is taken next round
                self._catch_up(store)  # what it saved before letting go
                if generation == self.generation and not self._unsaved:
                    return 0
                self.folder.mkdir(parents=True, exist_ok=True)
                changed = self._unsaved or not (self.folder / MANIFEST).exists()
                if self.generation >= 0:
                    changed = self._forget(store.deleted_since(self.generation)) or changed
                added = since_saved = 0
                chunks = store.iter_segment_batches(after_id=self.max_id, batch=batch)
                for chunk, vectors in (embed or self._embed_here)(chunks):
                    self._append(np.fromiter((r[0] for r in chunk), np.int64, len(chunk)),
                                 vectors)
                    added += len(chunk)
                    since_saved += len(chunk)
                    if progress is not None:
                        progress(len(chunk))
                    if since_saved >= _CHECKPOINT:  # kept through a crash, seen by workers
                        # Saved as of the generation before: what comes next is embedded,
                        # and deletions from this run on are looked up again.
                        self.generation = generation - 1
                        self._save_locked()
                        since_saved = 0
                self.generation = generation
                if added or changed:
                    self._save_locked()
                return added

    def _save_locked(self) -> None:
        self._unsaved = True
        with process_lock(self.data_dir / "semantic.lock"):
            self.save()
        self._unsaved = False

    def _forget(self, ids: list[int]) -> bool:
        """Tombstones for the deleted units among the rows; whether there were any."""
        files = self._files
        gone = sorted(i for i in ids if files.row_of(i) is not None and i not in files.deleted)
        if not gone:
            return False
        _write_at(self.folder / files.names["deleted"], files.tombstones * 8,
                  np.asarray(gone, np.int64))
        self._forget_in_memory(gone)
        files.tombstones += len(gone)
        if files.tombstones > COMPACT_SHARE * files.rows:
            self._compact()
        return True

    def _forget_in_memory(self, ids: list[int]) -> None:
        if not ids:
            return
        files = self._files
        with self._lock:
            files.deleted.update(ids)
            if not files.quantised:
                for index in files.indexes.values():
                    index.remove_ids(np.asarray(ids, dtype=np.int64))
            self._set_filter()

    def _compact(self) -> None:
        """The files again without their deleted rows (codes copied, not encoded again),
        under new names; swapped in at the end, so lookups carry on meanwhile."""
        old = self._files
        keep = ~np.isin(np.asarray(old.ids), np.fromiter(old.deleted, np.int64))
        tag = secrets.token_hex(4)
        names = {key: f"{key.replace('.', '-')}-{tag}" + Path(name).suffix
                 for key, name in old.names.items()}
        for key in LANGS:
            names[f"{key}.quantiser"] = old.names.get(f"{key}.quantiser", "")
        names = {key: name for key, name in names.items() if name}
        new = _Files(names, int(keep.sum()), trained_rows=old.trained_rows)
        sources = [("ids", old.ids)] + [(lang, old.vectors[lang]) for lang in LANGS]
        for lang in LANGS if old.quantised else ():
            width = old.indexes[lang].sa_code_size()
            sources.append((f"{lang}.codes", _map(self.folder / old.names[f"{lang}.codes"],
                                                  np.uint8, old.rows, width)))
        for key, rows in sources:
            written = 0
            for lo in range(0, old.rows, _CHUNK):
                part = np.asarray(rows[lo : lo + _CHUNK])[keep[lo : lo + _CHUNK]]
                _write_at(self.folder / names[key], written, part)
                written += part.nbytes
        new.ids = _map(self.folder / names["ids"], np.int64, new.rows)
        new.vectors = {lang: _map(self.folder / names[lang], np.float16, new.rows, self.dim)
                       for lang in LANGS}
        new.indexes = {lang: self._build(new, lang, 0, new.rows) for lang in LANGS}
        self._adopt(new)

    def _embed_here(self, chunks: Iterable[Rows]) -> Iterator[tuple[Rows, dict[str, np.ndarray]]]:
        """Each chunk's vectors, the two sides embedded in parallel in this process."""
        for rows in chunks:
            texts = {"zh": [r[1] for r in rows], "en": [r[2] for r in rows]}
            done = {lang: self._pool.submit(self._encode[lang], texts[lang]) for lang in LANGS}
            yield rows, {lang: f.result() for lang, f in done.items()}

    def _append(self, ids: np.ndarray, vectors: dict[str, np.ndarray]) -> None:
        """Rows (ids past the last one) written past the valid rows of the files and added
        to the indexes; the quantiser trained (again) when the memory has grown enough."""
        if not len(ids):
            return
        files = self._files
        start, stop = files.rows, files.rows + len(ids)
        rows = {lang: np.asarray(vectors[lang], dtype=np.float16) for lang in LANGS}
        _write_at(self.folder / files.names["ids"], start * 8, ids)
        added = {}
        for lang in LANGS:
            _write_at(self.folder / files.names[lang], start * self.dim * 2, rows[lang])
            added[lang] = _unit(rows[lang])
            if files.quantised:
                index = files.indexes[lang]
                added[lang] = index.sa_encode(added[lang])
                _write_at(self.folder / files.names[f"{lang}.codes"],
                          start * index.sa_code_size(), added[lang])
        mapped = _map(self.folder / files.names["ids"], np.int64, stop)
        vectors_mapped = {lang: _map(self.folder / files.names[lang], np.float16, stop, self.dim)
                          for lang in LANGS}
        with self._lock:  # before the indexes, so that every id they give has its row
            files.ids, files.vectors = mapped, vectors_mapped
        for lo in range(0, len(ids), _ADD_BATCH * 64):
            part = slice(lo, lo + _ADD_BATCH * 64)
            with self._lock:
                for lang in LANGS:
                    if files.quantised:
                        _add_codes(files.indexes[lang], added[lang][part], ids[part])
                    else:
                        files.indexes[lang].add_with_ids(added[lang][part], ids[part])
        with self._lock:
            files.rows = stop
            self._set_probe()
        self.max_id = max(self.max_id, int(ids[-1]))
        if files.quantised:
            due = (stop >= RETRAIN_GROWTH * files.trained_rows
                   or _kind(files.indexes["zh"]) != QUANTISER)  # files of the other kind
        else:
            due = stop >= self.exact_below
        if due:
            self._quantise()

    def _quantise(self) -> None:
        """Train each side's quantiser on a sample of its rows and encode them all (new
        files); swapped in at the end, so lookups carry on meanwhile."""
        files = self._files
        rows = files.rows
        sample = np.sort(np.random.default_rng(rows).choice(rows, min(rows, _TRAIN_MAX),
                                                            replace=False))
        tag = secrets.token_hex(4)
        names, indexes = dict(files.names), {}
        for lang in LANGS:
            index = _new_quantiser(self.dim, rows, _unit(files.vectors[lang][sample]))
            names[f"{lang}.quantiser"] = f"{lang}-{tag}.ivfpq"
            names[f"{lang}.codes"] = f"{lang}-{tag}.codes"
            faiss.write_index(index, str(self.folder / names[f"{lang}.quantiser"]))
            width = index.sa_code_size()
            for lo in range(0, rows, _CHUNK):
                codes = index.sa_encode(_unit(files.vectors[lang][lo : lo + _CHUNK]))
                _write_at(self.folder / names[f"{lang}.codes"], lo * width, codes)
                _add_codes(index, codes, np.asarray(files.ids[lo : lo + _CHUNK]))
            indexes[lang] = index
        log.info("semantic index: quantiser trained on %d of %d rows", len(sample), rows)
        with self._lock:
            files.names, files.indexes, files.trained_rows = names, indexes, rows
            self._set_filter()

    def _set_filter(self) -> None:
        """Search parameters of the quantised indexes: lists searched, deleted ids left out
        (they stay in the lists until the files are compacted); lock held."""
        files = self._files
        if not files.quantised:
            self._params = None
            return
        self._params = faiss.SearchParametersIVF()
        self._set_probe()
        if files.deleted:
            batch = faiss.IDSelectorBatch(np.fromiter(files.deleted, dtype=np.int64))
            self._selectors = (batch, faiss.IDSelectorNot(batch))  # kept alive for faiss
            self._params.sel = self._selectors[1]

    def _set_probe(self) -> None:
        """Lists searched for the memory's size now; lock held."""
        files = self._files
        if self._params is None:
            return
        lists = files.indexes["zh"].nlist
        least = math.ceil(_MIN_SCANNED * lists / max(1, files.rows))
        self._params.nprobe = min(lists, max(1, round(lists * PROBE_SHARE), least))

    # -- queries -----------------------------------------------------------------------
    def embed_query(self, text: str) -> np.ndarray:
        future = self._embedder.submit(text)
        return self._embedder.vector(text, future)

    def query(self, text: str, lang: str) -> SemanticQuery:
        """A query to search with; its embedding is batched with others waiting meanwhile."""
        return SemanticQuery(self, text, lang)

    def stored_vector(self, unit_id: int, lang: str) -> np.ndarray | None:
        """The indexed vector of a unit's segment in ``lang`` (None if not indexed)."""
        files = self._files
        row = files.row_of(int(unit_id))
        if row is None or row >= files.rows or int(unit_id) in files.deleted:
            return None
        return _unit(files.vectors[lang][row : row + 1])[0]

    def search(self, vector: np.ndarray, lang: str, k: int) -> list[tuple[int, float]]:
        """The ``k`` nearest segments in ``lang``: (unit id, cosine), best first."""
        # One query gains nothing from OpenMP threads, whose spinning after each search cost
        # ~4 ms of CPU per lookup on 2 cores. The setting is the calling thread's own, so
        # bulk adds on other threads keep theirs.
        faiss.omp_set_num_threads(1)
        query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        with self._lock:
            files = self._files
            index = files.indexes[lang]
            if index.ntotal == 0 or k <= 0:
                return []
            if not files.quantised:
                sims, ids = index.search(query, min(k, index.ntotal))
                return [(int(i), float(s)) for i, s in zip(ids[0], sims[0], strict=True)
                        if i >= 0]
            _, found = index.search(query, max(k, RERANK), params=self._params)
            ids, vectors = files.ids, files.vectors[lang]
        found = np.sort(found[0][found[0] >= 0])  # in row order: the file read forwards
        sims = _unit(vectors[np.searchsorted(ids, found)]) @ query[0]  # exact cosines
        best = np.argsort(-sims, kind="stable")[:k]
        return [(int(found[i]), float(sims[i])) for i in best]

    def similarities(self, vector: np.ndarray, lang: str, ids: Sequence[int]) -> dict[int, float]:
        """Cosine of ``vector`` with the stored segments of the given units."""
        stored = {uid: self.stored_vector(uid, lang) for uid in ids}
        return {uid: float(np.dot(v, vector)) for uid, v in stored.items() if v is not None}

    def stats(self) -> dict:
        return {
            "encoder": self.spec,
            "indexed": len(self),
            "index": "ivfpq" if self.approximate else "exact",
            "generation": self.generation,
        }
