"""What an XML document declares before its root element, found before any XML parser reads it.

A TMX needs no DTD of its own: an internal subset (``<!DOCTYPE tmx [ ... ]>``) is where entity
declarations live (billion laughs, XXE, parameter entities). Spotting it here, by our own scan
of the prolog, gives the same refusal whatever wording (or limit) the installed libxml2 has;
libxml2's own protections stay on behind it.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from typing import Literal

# Legitimate prologs are a few hundred bytes; one longer than this is not a TMX.
PROLOG_LIMIT = 1 << 20
_BLOCK = 1 << 16

Prolog = Literal["own_dtd", "plain", "too_long"]

_SKIP = re.compile(r"\s+|<\?.*?\?>|<!--.*?-->", re.S)
# <!DOCTYPE name [SYSTEM|PUBLIC "literal" ...] up to its '[' (internal subset) or '>'.
_DOCTYPE = re.compile(r"""<!DOCTYPE(?:[^\[>"']|"[^"]*"|'[^']*')*""")
_OPENERS = ("<?", "<!--", "<!DOCTYPE")


def read_prolog(read: Callable[[int], bytes], limit: int = PROLOG_LIMIT) -> tuple[bytes, Prolog]:
    """Read a document's bytes with ``read`` until its prolog is over; return them (for the
    parser to read again) and what the prolog is: ``own_dtd`` when its DOCTYPE opens an
    internal subset, ``too_long`` when its first ``limit`` bytes do not end it, else ``plain``
    (anything that is not prolog ends the scan: the parser reports it)."""
    head = b""
    decoder = None
    text = ""
    while len(head) < limit:
        block = read(min(_BLOCK, limit - len(head)))
        head += block
        if decoder is None and (len(head) >= 4 or not block):
            encoding, bom = _encoding(head)
            decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
            text = decoder.decode(head[bom:], final=not block)
        elif decoder is not None:
            text += decoder.decode(block, final=not block)
        verdict = _scan(text) if decoder is not None else None
        if verdict is not None or not block:
            return head, "own_dtd" if verdict else "plain"
    return head, "too_long"


def _encoding(head: bytes) -> tuple[str, int]:
    """The codec to scan the prolog with, and the length of the byte order mark to skip.
    Any ASCII-compatible encoding scans as Latin-1: the prolog's markup is ASCII in all of
    them, and no multi-byte character has a byte among ``<>?!-"'``."""
    for bom, encoding in (
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF32_BE, "utf-32-be"),
        (codecs.BOM_UTF8, "latin-1"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if head.startswith(bom):
            return encoding, len(bom)
    first = head[:4].ljust(4, b"\x01")
    if first[:3] == b"\0\0\0":
        return "utf-32-be", 0
    if first[1:] == b"\0\0\0":
        return "utf-32-le", 0
    if first[0] == 0 and first[1] != 0:
        return "utf-16-be", 0
    if first[0] != 0 and first[1] == 0:
        return "utf-16-le", 0
    return "latin-1", 0


def _scan(text: str) -> bool | None:
    """True if the prolog in ``text`` opens an internal DTD subset, False once the root element
    (or anything that is not prolog) comes first, None if ``text`` ends before either."""
    pos = 0
    while pos < len(text):
        skipped = _SKIP.match(text, pos)
        if skipped:
            pos = skipped.end()
            continue
        if text.startswith("<!DOCTYPE", pos):
            end = _DOCTYPE.match(text, pos).end()
            if end == len(text) or text[end] in "\"'":  # an unclosed literal: read on
                return None
            if text[end] == "[":
                return True
            pos = end + 1
            continue
        rest = text[pos:]
        if any(o.startswith(rest) or rest.startswith(o) for o in _OPENERS):
            return None  # a token begun but not yet ended
        return False
    return None
