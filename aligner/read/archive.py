"""Zip archives (.docx files, job uploads) vetted before they are read.

A zip's size says little about what reading it costs: 153 KB of .docx can hold 100 MB of
XML, and a few MB of zip can list 850,000 entries whose directory alone takes seconds and
hundreds of MB to read. :func:`check_zip` counts the entries from the end record (a few
bytes) before anything else, then checks the sizes the directory declares, then streams
every member counting real bytes (headers can lie) and, for XML, tags.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from collections.abc import Callable
from typing import BinaryIO

from aligner.errors import InputError, InputTooLarge

_END = b"PK\x05\x06"
_END64_LOCATOR = b"PK\x06\x07"
_END64 = b"PK\x06\x06"
_BLOCK = 1 << 20
_DIRECTORY_BYTES_PER_ENTRY = 1024  # a central-directory entry is 46 bytes and its name


class BrokenArchive(InputError):
    """A zip that cannot be read: not a zip, truncated, false sizes, a bad checksum."""


def directory_size(handle: BinaryIO) -> tuple[int, int]:
    """(entries, bytes of the central directory), from the end record alone."""
    handle.seek(0, 2)
    size = handle.tell()
    span = min(size, 22 + 0xFFFF)
    handle.seek(size - span)
    tail = handle.read(span)
    at = tail.rfind(_END)
    if at < 0 or len(tail) - at < 22:
        raise BrokenArchive("not a zip file (no end record)")
    entries, directory = struct.unpack("<HI", tail[at + 10 : at + 16])
    if entries == 0xFFFF or directory == 0xFFFFFFFF:
        locator = tail[at - 20 : at] if at >= 20 else b""
        if locator[:4] != _END64_LOCATOR:
            raise BrokenArchive("damaged zip (zip64 end record missing)")
        (offset,) = struct.unpack("<Q", locator[8:16])
        handle.seek(offset)
        record = handle.read(56)
        if record[:4] != _END64:
            raise BrokenArchive("damaged zip (zip64 end record missing)")
        entries, directory = struct.unpack("<QQ", record[32:48])
    return entries, directory


def check_zip(
    handle: BinaryIO,
    *,
    max_entries: int,
    max_bytes: int,
    what: str = "the zip",
    count_tags: Callable[[str], bool] | None = None,
    max_tags: int = 0,
    stream: bool = True,
) -> list[zipfile.ZipInfo]:
    """Vet a zip: at most ``max_entries`` entries and ``max_bytes`` once expanded.

    With ``count_tags``, members it accepts (by name) may hold at most ``max_tags`` XML tags
    in all. ``stream`` False only checks the declared sizes (the caller counts real bytes as
    it extracts). Returns the members; raises ``InputTooLarge`` or ``BrokenArchive``.
    """
    entries, directory = directory_size(handle)
    if entries > max_entries or directory > max_entries * _DIRECTORY_BYTES_PER_ENTRY:
        raise InputTooLarge(f"{what} holds more than {max_entries} entries")
    handle.seek(0)
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise BrokenArchive(f"{what} is not a readable zip ({exc})") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > max_entries:
            raise InputTooLarge(f"{what} holds more than {max_entries} entries")
        if sum(info.file_size for info in infos) > max_bytes:
            raise InputTooLarge(f"{what} expands to more than {max_bytes} bytes")
        if stream:
            _stream(archive, infos, max_bytes, what, count_tags, max_tags)
    return infos


def _stream(archive, infos, max_bytes, what, count_tags, max_tags) -> None:
    seen = tags = 0
    try:
        for info in infos:
            if info.is_dir() or info.flag_bits & 0x1:
                continue
            counting = count_tags is not None and count_tags(info.filename)
            with archive.open(info) as member:
                for block in iter(lambda m=member: m.read(_BLOCK), b""):
                    seen += len(block)
                    if seen > max_bytes:
                        raise InputTooLarge(f"{what} expands to more than {max_bytes} bytes")
                    if counting:
                        tags += block.count(b"<")
                        if tags > max_tags:
                            raise InputTooLarge(f"{what} holds more than {max_tags} XML tags")
    except InputTooLarge:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise BrokenArchive(f"{what} is damaged ({exc})") from None
