"""Two printed columns side by side on one line of text (``pdftotext -layout``) read apart.

A page laid out this way has a gutter: a position where nearly every line that reaches past it
has at least two spaces. Each line is cut there; the page becomes its left column, then its
right column. Page headers and footers span the gutter and stay where they are, at the top or
the bottom. Blank lines of such a page say nothing about paragraphs (a blank line in one column
is often only the other column's paragraph break), so they are dropped; indents are kept.
"""

from __future__ import annotations

from collections import Counter

from aligner.read.furniture import is_furniture

_MIN_LINES = 8  # a page with fewer body lines is not judged
_MAX_WIDTH = 250
_EDGE = 3


def split_pages(pages: list[list[str]]) -> list[list[str]]:
    """Every page read column by column; headers that recur at page edges are not cut.

    A page with few lines (the last one) is cut only where the other pages are, give or take
    the shift between odd and even pages.
    """
    recurring = _recurring_edges(pages)
    bodies = [_body(page, recurring) for page in pages]
    gutters = [_gutter([page[i] for i in body]) for page, body in zip(pages, bodies, strict=True)]
    known = {g for g in gutters if g is not None}
    out = []
    for page, body, gutter in zip(pages, bodies, gutters, strict=True):
        if gutter is None and known:
            short = _gutter([page[i] for i in body], min_lines=3)
            if short is not None and any(abs(short - g) <= 8 for g in known):
                gutter = short
        out.append(_split(page, body, gutter, recurring))
    return out


def _whole(line: str, keep: frozenset[str]) -> bool:
    """Lines never cut: furniture, bare page numbers, recurring headers."""
    text = line.strip()
    return is_furniture(line) or (text.isdigit() and len(text) <= 4) or _norm(line) in keep


def _body(page: list[str], keep: frozenset[str]) -> list[int]:
    return [i for i, line in enumerate(page) if line.strip() and not _whole(line, keep)]


def _split(page: list[str], body: list[int], gutter: int | None, keep: frozenset[str]) -> list[str]:
    """The page with its body read left column first; furniture keeps its place."""
    if gutter is None or not body:
        return page
    first, last = body[0], body[-1]
    left: list[str] = []
    right: list[str] = []
    for line in page[first : last + 1]:
        if not line.strip() or _whole(line, keep):
            continue
        left.append(line[:gutter].rstrip())
        right.append(line[gutter:].rstrip())
    left, right = _dedent([x for x in left if x.strip()]), _dedent([x for x in right if x.strip()])
    return page[:first] + left + right + page[last + 1 :]


def _norm(line: str) -> str:
    return " ".join(line.split())


def _recurring_edges(pages: list[list[str]]) -> frozenset[str]:
    """Lines among the first or last few of a page that recur on several pages."""
    seen: Counter[str] = Counter()
    for page in pages:
        lines = [_norm(line) for line in page if line.strip()]
        seen.update(set(lines[:_EDGE] + lines[-_EDGE:]))
    need = max(3, int(0.3 * len(pages)))
    return frozenset(text for text, n in seen.items() if n >= need)


def _gutter(lines: list[str], min_lines: int = _MIN_LINES) -> int | None:
    """Where the right column starts, or None for a page of one column."""
    if len(lines) < min_lines:
        return None
    width = max(len(line) for line in lines)
    if width > _MAX_WIDTH:  # a paragraph a line, not a printed page
        return None
    shares = {x: _gap_share(lines, x) for x in range(int(0.3 * width), int(0.7 * width))}
    best = max(shares, key=lambda x: shares[x], default=None)
    if best is None or shares[best] < 0.95:
        return None
    # Cut where the right column's text starts on most lines (its paragraphs are indented).
    starts = Counter(
        len(line) - len(line[best:].lstrip()) for line in lines if len(line.rstrip()) > best + 1
    )
    return starts.most_common(1)[0][0]


def _gap_share(lines: list[str], x: int) -> float:
    """Of the lines that reach past ``x``, the share with two spaces there; 0 if too few reach."""
    crossing = [line for line in lines if len(line.rstrip()) > x + 1]
    if len(crossing) < 0.5 * len(lines):
        return 0.0
    gaps = sum(1 for line in crossing if line[x - 1 : x + 1] == "  " or line[x : x + 2] == "  ")
    return gaps / len(crossing)


def _dedent(lines: list[str]) -> list[str]:
    """Lines without the indent they all share (the column's own left edge)."""
    indent = min((len(line) - len(line.lstrip(" ")) for line in lines), default=0)
    return [line[indent:] for line in lines]
