"""What aligning one pair of documents may cost: reading each document, then its size a side.

The service passes its operator's settings (``/align`` and batch jobs alike); the command
line keeps the reading defaults and no size limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aligner.align.segment import split_paragraphs
from aligner.errors import InputTooLarge
from aligner.models import Document
from aligner.read.ingest import DEFAULT_LIMITS, ReadLimits, read_bytes


@dataclass(frozen=True)
class AlignLimits:
    """``read``: what reading each document may cost (checked before it is parsed);
    ``max_chars`` / ``max_sentences``: the size of one side once read (None: no limit)."""

    read: ReadLimits = DEFAULT_LIMITS
    max_chars: int | None = None
    max_sentences: int | None = None


NO_SIZE_LIMIT = AlignLimits()


def checked_size(doc: Document, name: str, limits: AlignLimits) -> int:
    """The characters of ``doc``; raises ``InputTooLarge`` past the limits of one side."""
    chars = sum(len(p) for p in doc.paragraphs)
    if limits.max_chars is not None and chars > limits.max_chars:
        raise InputTooLarge(
            f"{name}: {chars} characters; an alignment takes at most {limits.max_chars} a side"
        )
    if limits.max_sentences is not None:
        sentences = len(split_paragraphs(doc.paragraphs, doc.lang))
        if sentences > limits.max_sentences:
            raise InputTooLarge(
                f"{name}: {sentences} sentences; an alignment takes at most "
                f"{limits.max_sentences} a side"
            )
    return chars


def read_side(data: bytes, name: str, lang: str, limits: AlignLimits) -> tuple[Document, int]:
    """One side of a pair read within ``limits``, with its characters."""
    doc = read_bytes(data, name, lang, limits.read)
    return doc, checked_size(doc, name, limits)


def read_side_file(path: str | Path, lang: str, limits: AlignLimits) -> Document:
    """One side of a pair read from a file within ``limits``."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(21, "Is a directory", str(path))
    return read_side(path.read_bytes(), path.name, lang, limits)[0]
