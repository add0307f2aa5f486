"""Page furniture of UN documents: what is printed on every page and is no part of the text.

Headers and footers carry the symbol, the page (``4/26``), the job number (``17-24158 (E)``,
glued to the page as ``26-039202/28`` in some extractions), the date (``02/08/2017``,
``2017年8月2日``), the running title between them, and a bar code (``*1724158*``). Older records
repeat a running header (``Security Council 3756th meeting``) and print a bare page number; those
are recognised as lines that recur at page edges. Extraction can put the furniture anywhere in a
sentence's course (a page break falls mid-sentence), so the lines around it are joined as if it
were not there, blank lines next to it included.
"""

from __future__ import annotations

import re
from collections import Counter

_SYMBOL = r"[A-Z]{1,2}/(?:[A-Z0-9.\-]+/)*[A-Z0-9.\-]*\d[A-Z0-9.\-]*"
_PAGE = r"\d{1,4}/\d{1,4}"
_JOB = r"\d{2}-\d{5}(?:\s*\([A-Z]\))?"
_DATE = r"(?:\d{2}/\d{2}/\d{4}|\d{4}年\d{1,2}月\d{1,2}日)"
_TITLE = r"(?:\s.{0,160})?\s"
FURNITURE = re.compile(
    rf"^(?:{_SYMBOL}|{_PAGE}|{_JOB}|{_DATE}|{_PAGE}\s*{_JOB}|{_JOB}\s*{_PAGE}"
    rf"|{_SYMBOL}{_TITLE}{_DATE}|{_DATE}{_TITLE}{_SYMBOL}|\*\d{{7,}}\*)$"
)
RECORD_SYMBOL = re.compile(r"^([A-Z]{1,2}/(?:\d+/)?PV\.\d+(?:/Resumption\d*)?)\b")
_SQUEEZE = re.compile(r"\s*([/.])\s*(?=[A-Z0-9])")  # "S/ PV. 8422" as some PDF readers give it
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # pdftotext writes "2/9\b"
_PAGE_NUMBER = re.compile(r"^\d{1,4}$")
_FINAL = tuple(".!?:;。！？：；")
_EDGE = 3  # lines at the top and bottom of a page where headers and footers are printed


def is_furniture(line: str) -> bool:
    """Whether a whole line is a UN page header or footer. A symbol followed by punctuation
    (``A/79/L.8.``, wrapped onto a line of its own) ends a sentence: it is text."""
    text = _CONTROL.sub(" ", line).strip()
    if text.endswith((".", ",", ";", ":", ")")) and re.fullmatch(_SYMBOL + r"[.,;:)]+", text):
        return False
    return bool(text) and bool(FURNITURE.match(_SQUEEZE.sub(r"\1", text)))


def record_symbol(lines: list[str]) -> str:
    """The record's symbol (``S/PV.8017``) from its page headers, or ""."""
    for line in lines[:400]:
        text = _SQUEEZE.sub(r"\1", line.strip())
        m = RECORD_SYMBOL.match(text)
        if m and FURNITURE.match(text):
            return m.group(1)
    return ""


def strip_furniture(pages: list[list[str]]) -> tuple[list[str], list[str]]:
    """The body lines of ``pages`` (page breaks gone) and the furniture removed, as printed.

    ``pages`` is one list of lines per page when the pages are known (a PDF, a text with form
    feeds), else one list. A page break and removed furniture never separate paragraphs: blank
    lines next to them are dropped.
    """
    lines: list[str] = []
    starts: list[int] = []  # index in ``lines`` where each page after the first starts
    for n, page in enumerate(pages):
        if n:
            starts.append(len(lines))
        lines.extend(page)
    strong = [is_furniture(line) for line in lines]
    edges = _edges(lines, starts, strong)
    running = _running_headers(lines, edges)
    drop = [
        strong[i] or (i in edges and (text in running or bool(_PAGE_NUMBER.match(text))))
        for i, text in enumerate(_key(line) for line in lines)
    ]
    removed = [_key(lines[i]) for i in range(len(lines)) if drop[i]]
    page_starts = set(starts)
    body: list[str] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() and not drop[i]:
            body.append(lines[i])
            i += 1
            continue
        j = i  # a run of blank and dropped lines: lines[i:j]
        while j < len(lines) and (drop[j] or not lines[j].strip()):
            j += 1
        at_break = any(drop[i:j]) or any(i <= s <= j for s in page_starts)
        if not at_break:
            body.extend(lines[i:j])
        i = j
    return body, removed


def _key(line: str) -> str:
    """A line as compared across pages: control characters gone, spaces normalised."""
    return " ".join(_CONTROL.sub(" ", line).split())


def _edges(lines: list[str], starts: list[int], strong: list[bool]) -> dict[int, int]:
    """Lines near a page break or a header/footer line → which break they are near."""
    ends = {len(lines)} if starts else set()  # the foot of the last page
    anchors = sorted(set(starts) | ends | {i for i, s in enumerate(strong) if s})
    edges: dict[int, int] = {}
    for anchor in anchors:
        for step in (-1, 1):
            i, seen = anchor if step == 1 else anchor - 1, 0
            while 0 <= i < len(lines) and seen < _EDGE:
                if lines[i].strip() and not strong[i]:
                    seen += 1
                    edges.setdefault(i, anchor)
                i += step
    cover = starts[0] if starts else 0  # the first page has no running header
    return {i: a for i, a in edges.items() if i >= cover}


def _running_headers(lines: list[str], edges: dict[int, int]) -> set[str]:
    """Short lines without final punctuation that recur near page breaks: running headers."""
    places: dict[str, set[int]] = {}
    for i, anchor in edges.items():
        text = _key(lines[i])
        if len(text) <= 160 and not text.endswith(_FINAL):
            places.setdefault(text, set()).add(anchor)
    breaks = len(set(edges.values()))
    need = max(3, int(0.3 * breaks))
    counts = Counter({text: len(anchors) for text, anchors in places.items()})
    return {text for text, n in counts.items() if n >= need}
