"""Lay a record's text out again as another printing would: the re-wrapping property.

The reader must not depend on where lines and pages fall. ``relayout`` takes the paragraphs
of a record as read and prints them again: Chinese at 18-45 ems a line (a paragraph's first line
two ems narrower, for its indent, which pdf.js drops), English at 55-100 characters (titles
and the table of the cover page, before the first speech, on lines of their own: no reader of
the text can tell a title that fills its line from a wrapped one; for the same reason, widths
at which another paragraph without final punctuation fills its last line are not drawn), page
furniture (a running header and a footer, the record's own when it has them) at random line
positions, and blank lines dropped, added after every line or added between paragraphs.
``sentences`` is what must not change: every heading, language note and sentence of the record,
in order, as the reader, the turn cutter and the splitter give them.

Used by tests/test_rewrap.py (hypothesis draws the layouts) and bench/record_bench.py (a seeded
generator, 500 layouts per record and language).
"""

from __future__ import annotations

import random
import re
import textwrap
import unicodedata
from dataclasses import dataclass
from importlib.util import find_spec

from aligner.models import Document

if find_spec("aligner.ingest") is None:
    from aligner.align.segment import split_sentences
    from aligner.read.furniture import is_furniture
    from aligner.read.ingest import read_bytes
    from aligner.record.turns import parse_heading, parse_turns, procedural_kind
else:  # the layout before issue 24: bench/record_bench.py's baseline (checked first, since
    # the editable install would also find this checkout's aligner.read under an old tree)
    from aligner.furniture import is_furniture
    from aligner.ingest import read_bytes
    from aligner.segment import split_sentences
    from aligner.turns import parse_heading, parse_turns, procedural_kind

_LEADER = re.compile(r"(?:\.\s?){8,}|…{3,}")
_FINAL = tuple("。！？：；.!?:;")
_FINAL_NOT_COLON = tuple("。！？；.!?;")  # a colon at a full line's end may go on
_CLOSERS = "”’）)」』\"'"
_NO_LINE_START = frozenset("，。、；：！？”’）」』》】…")
_ASCII_RUN = re.compile(r"[\x21-\x7e]+|\s+|.", re.S)


@dataclass(frozen=True)
class Layout:
    """One way to print a record: line width, where page breaks fall, how blank lines go."""

    width: int  # ems (Chinese) or characters (English) per line
    breaks: tuple[float, ...]  # page breaks, as shares of the lines (0-1)
    blanks: str  # "none", "every" (after every line) or "paragraphs" (between paragraphs)
    seed: int  # which paragraph ends get a blank line with "paragraphs"


def random_layout(rng: random.Random, lang: str) -> Layout:
    low, high = (18, 45) if lang == "zh" else (55, 100)
    return Layout(
        width=rng.randint(low, high),
        breaks=tuple(sorted(rng.random() for _ in range(rng.randint(0, 4)))),
        blanks=rng.choice(["none", "every", "paragraphs"]),
        seed=rng.randrange(1 << 30),
    )


def _em(ch: str) -> float:
    return 1.0 if unicodedata.east_asian_width(ch) in "WFA" else 0.5


def wrap_zh(paragraph: str, width: int) -> list[str]:
    """A Chinese paragraph in lines of ``width`` ems, the first two ems narrower; a run of
    Latin letters, digits and signs (``S/2026/8``, a web address) is never broken, and no line
    starts with a closing mark (it hangs in the margin, as printers do)."""
    lines, line, used, limit = [], "", 0.0, width - 2
    for token in _ASCII_RUN.findall(paragraph):
        size = sum(_em(ch) for ch in token)
        if line and used + size > limit and token not in _NO_LINE_START:
            lines.append(line)
            line, used, limit = "", 0.0, width
            if token.isspace():
                continue
        line += token
        used += size
    return lines + [line] if line else lines


def wrap_en(paragraph: str, width: int) -> list[str]:
    return textwrap.wrap(
        paragraph, width, break_long_words=False, break_on_hyphens=False
    ) or [paragraph]


def _starts_turn(paragraph: str, lang: str) -> bool:
    return parse_heading(paragraph, lang) is not None or bool(procedural_kind(paragraph, lang))


def _fills(line: str, lang: str, width: int) -> bool:
    """Whether a paragraph's last line reaches the margin, as far as a reader can measure."""
    if lang == "zh":
        return sum(_em(ch) for ch in line) >= width - 5
    return len(line) >= 0.75 * width


def relayout(
    paragraphs: list[str], lang: str, furniture: list[str], layout: Layout
) -> str | None:
    """The paragraphs printed in ``layout``, furniture lines at its page breaks; None when a
    paragraph without final punctuation would fill its last line (nothing in the text would
    then tell that it ends there: such layouts are not drawn)."""
    rng = random.Random(layout.seed)
    wrap = wrap_zh if lang == "zh" else wrap_en
    lines: list[str] = []
    ends: set[int] = set()  # indexes of lines that end a paragraph
    speech = next(
        (k for k, p in enumerate(paragraphs) if parse_heading(p, lang)), len(paragraphs)
    )
    for k, paragraph in enumerate(paragraphs):
        open_end = not paragraph.rstrip(_CLOSERS).endswith(_FINAL_NOT_COLON)
        # Whether the next paragraph shows where it starts (a heading, a time line, a vote).
        marked = k + 1 == len(paragraphs) or _starts_turn(paragraphs[k + 1], lang)
        title = k < speech and not _LEADER.search(paragraph) and open_end
        if _LEADER.search(paragraph) or title:
            if title and not marked and _fills(paragraph, lang, layout.width):
                return None  # a title as wide as the column runs into the next one
            lines.append(paragraph)  # a cover page's table row or title is never wrapped
        else:
            wrapped = wrap(paragraph, layout.width)
            if open_end and not marked and _fills(wrapped[-1], lang, layout.width):
                return None
            lines.extend(wrapped)
        ends.add(len(lines) - 1)
    at = sorted({min(len(lines) - 1, int(share * len(lines))) for share in layout.breaks})
    out: list[str] = []
    for k, line in enumerate(lines):
        if k in at and k:
            out.extend(furniture)
        out.append(line)
        if layout.blanks == "every" or (
            layout.blanks == "paragraphs" and k in ends and rng.random() < 0.7
        ):
            out.append("")
    return "\n".join(out) + "\n"


def sentences(text: str, lang: str) -> list[str]:
    """Headings, language notes and sentences of a record, in order, as read and cut."""
    return sentences_of(read_bytes(text.encode("utf-8"), f"record.{lang}.txt", lang))


def sentences_of(doc: Document) -> list[str]:
    """Headings, language notes and sentences of a record read, in order."""
    lang = doc.lang
    out: list[str] = []
    for turn in parse_turns(doc):
        if turn.heading:
            out.append(turn.heading)
        out.extend(turn.notes)
        out.extend(s for p in turn.paragraphs for s in split_sentences(p, lang))
    return out


def furniture_of(removed: list[str], symbol: str) -> list[str]:
    """A page's header and footer: the record's own (two lines it had removed that say what
    they are: symbol, page, job number, date), or made up. A running title or a bare page
    number is furniture only where it recurs at page edges, which a layout of few pages does
    not show."""
    own = [line for line in removed if is_furniture(line)]
    if len(own) >= 2:
        return own[:2]
    return [f"{symbol or 'S/PV.1'} 01/01/2026", "2/9 26-01225"]
