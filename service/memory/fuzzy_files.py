"""The fuzzy index on disk: one copy, written by one indexer, mapped by every worker.

The folder holds immutable segments (a folder of ``.npy`` arrays each, mapped with
``numpy.load(mmap_mode="r")``: N workers share one copy through the page cache, and a restart
maps the files instead of tokenising the memory again), the two vocabularies (token → code,
append-only files, one token a line) and ``manifest.json``, which names the segments and
vocabulary lengths in use, the store they belong to (its ``identity``), the last unit id they
cover (``seq``: every unit up to it is in a segment or deleted) and the generation their
deletions reflect. A write makes new files first, flushes them, then replaces the manifest
(one atomic rename); files no manifest names any more are removed after. Workers that still
map a removed file keep reading it (the data stays until they let go).

One process at a time is the indexer: the one holding ``<folder>.lock``.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

FORMAT = 4
MANIFEST = "manifest.json"


@dataclass
class Manifest:
    """What the files in a fuzzy index folder hold, and for which store."""

    identity: str
    seq: int = 0  # every unit with an id up to this one is in a segment, or deleted
    generation: int = 0  # tombstones up to this generation are in ``deleted``
    live: int = 0  # units in the segments that are not deleted
    serial: int = 0  # bumped by every write: names new files
    segments: dict[str, list[str]] = field(default_factory=lambda: {"zh": [], "en": []})
    vocab: dict[str, int] = field(default_factory=lambda: {"zh": 0, "en": 0})  # tokens
    vocab_bytes: dict[str, int] = field(default_factory=lambda: {"zh": 0, "en": 0})
    deleted: str = ""  # the file of deleted ids (sorted), "" when none
    version: int = FORMAT


def read_manifest(folder: Path) -> Manifest | None:
    """The folder's manifest; None when there is none, it is damaged or of another format."""
    try:
        data = json.loads((folder / MANIFEST).read_text())
        if data.get("version") != FORMAT:
            return None
        return Manifest(**data)
    except (OSError, ValueError, TypeError):
        return None


def write_manifest(folder: Path, manifest: Manifest) -> None:
    """Make ``manifest`` the one in use (its files already written), then remove the files
    it no longer names."""
    tmp = folder / f"{MANIFEST}.tmp{os.getpid()}"
    with open(tmp, "w") as handle:
        handle.write(json.dumps(asdict(manifest)))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, folder / MANIFEST)
    _fsync_dir(folder)
    named = {n for names in manifest.segments.values() for n in names} | {manifest.deleted}
    for path in folder.iterdir():
        is_ours = path.name.startswith(("seg-", "deleted-")) or ".tmp" in path.name
        if is_ours and path.name not in named and not path.name.startswith(MANIFEST):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def clear(folder: Path) -> None:
    """Empty a folder whose index cannot be used (another store's, another format)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)


def write_arrays(folder: Path, name: str, arrays: dict[str, np.ndarray]) -> None:
    """One segment's arrays as ``folder/name/*.npy``, on disk before the name appears."""
    tmp = folder / f"{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for key, array in arrays.items():
        with open(tmp / f"{key}.npy", "wb") as handle:
            np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
            handle.flush()
            os.fsync(handle.fileno())
    _fsync_dir(tmp)
    os.replace(tmp, folder / name)


def map_arrays(folder: Path, name: str, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """A segment's arrays, mapped read-only (raises OSError/ValueError when damaged)."""
    return {
        key: np.load(folder / name / f"{key}.npy", mmap_mode="r", allow_pickle=False)
        for key in keys
    }


def write_deleted(folder: Path, name: str, ids: np.ndarray) -> None:
    tmp = folder / f"{name}.tmp"
    with open(tmp, "wb") as handle:
        np.save(handle, np.asarray(ids, dtype=np.int64), allow_pickle=False)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, folder / name)


def read_deleted(folder: Path, name: str) -> np.ndarray:
    if not name:
        return np.zeros(0, np.int64)
    return np.load(folder / name, allow_pickle=False)


def vocab_path(folder: Path, lang: str) -> Path:
    return folder / f"vocab-{lang}.txt"


def read_vocab(folder: Path, lang: str, start: int, end: int) -> list[str]:
    """The tokens between byte ``start`` and ``end`` of a vocabulary file, in code order."""
    if end <= start:
        return []
    with open(vocab_path(folder, lang), "rb") as handle:
        handle.seek(start)
        data = handle.read(end - start)
    if len(data) != end - start:
        raise ValueError(f"vocabulary {lang} is cut short")
    return data.decode("utf-8").split("\n")[:-1]


def append_vocab(folder: Path, lang: str, at: int, tokens: list[str]) -> int:
    """Write ``tokens`` after byte ``at`` (what a crash left past it goes); the new end."""
    path = vocab_path(folder, lang)
    with open(path, "r+b" if path.exists() else "w+b") as handle:
        handle.truncate(at)
        handle.seek(at)
        if tokens:
            handle.write(("\n".join(tokens) + "\n").encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())
        return handle.tell()


class IndexerLock:
    """Held by the one process that writes the folder (non-blocking: the others map)."""

    def __init__(self, folder: Path):
        self.path = folder.with_name(folder.name + ".lock")
        self._handle = None

    @property
    def held(self) -> bool:
        return self._handle is not None

    def try_acquire(self) -> bool:
        if self._handle is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+b")  # noqa: SIM115 - kept open while the lock is held
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._handle = handle
        return True

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
