"""Cut a UN meeting record into speaker turns and procedural passages.

A speaker turn starts at a heading: ``里克罗夫特先生（联合王国）（以英语发言）：`` or
``Mr. Rycroft (United Kingdom):``; its parentheses give the country or organisation and the
language of delivery. A procedural turn starts at an opening or closing time, the adoption of
the agenda or a vote; paragraphs that follow it without a heading (the agenda item, the list of
votes) belong to it. A note of the language of delivery before any text of a turn
(``（以英语发言）``, ``(spoke in English)``) is not text: it is kept in the turn's ``notes``, as
the heading is in ``heading``. In the middle of a speech, where a speaker changes language,
such a note is a paragraph of its own: the memory gets it as a procedural unit.

The cover page (``主席： 兰道先生/沃尔兹先生 ……（美利坚合众国）``, ``President:``, ``Members:``,
the agenda) is procedural: a heading followed by leader dots is a line of it, and when the record
has an opening line (``The meeting was called to order at…``, ``下午3时10分开会。``) nothing
before it is a speech.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import unicodedata
from collections import Counter
from pathlib import Path

from aligner.errors import TextLostError
from aligner.models import Document, Turn
from aligner.record import speakers

_EN_HEADING = re.compile(
    rf"^(?P<speaker>{speakers.EN_SPEAKER})"
    rf"(?P<parens>(?:\s*{speakers.PAREN_EN}){{0,3}})\s*:\s*(?P<rest>.*)$",
    re.S,
)
_ZH_HEADING = re.compile(
    rf"^(?P<speaker>{speakers.ZH_SPEAKER})"
    rf"(?P<parens>(?:\s*{speakers.PAREN_ZH}){{0,3}})\s*[：:]\s*(?P<rest>.*)$",
    re.S,
)
_PARENS = {"en": re.compile(speakers.PAREN_EN), "zh": re.compile(speakers.PAREN_ZH)}
_PARTICLES = frozenset(
    "de da del della der des di do dos du el al bin ibn la le van von y e".split()
)
_ELIDED = re.compile(r"^(?:d|l|al|el|ad|as|ash|at|bin|ibn)['’\-][A-Z]", re.IGNORECASE)
_PRESIDENT = frozenset(["主席", "代理主席", "The President", "The Acting President"])

_TIME_ZH = r"(?:上午|下午|晚上|中午)?\d{1,2}时(?:\d{1,2}分)?"
PROCEDURAL = {
    "zh": (
        ("opening", re.compile(rf"^{_TIME_ZH}(?:开会|复会)。?$")),
        ("closing", re.compile(rf"^{_TIME_ZH}(?:散会|休会)。?$|^会议于.{{0,20}}(?:暂停|散会)。?$")),
        ("agenda", re.compile(r"^通过议程$|^议程通过。?$")),
        ("vote", re.compile(r"^进行了(?:举手|记录)表决。?$|^(?:赞成|反对|弃权)[:：]|^表决结果")),
    ),
    "en": (
        ("opening", re.compile(r"^The meeting (?:was called to order|was resumed|resumed) at ")),
        ("closing", re.compile(r"^The meeting (?:rose|was suspended|was adjourned) at ")),
        ("agenda", re.compile(r"^Adoption of the agenda\.?$|^The agenda was adopted\.?$")),
        (
            "vote",
            re.compile(r"^A (?:recorded )?vote was taken|^(?:In favour|Against|Abstaining):"),
        ),
    ),
}


# The line that opens a meeting (not one resuming it): what comes before it is the cover page.
_CALLED_TO_ORDER = {
    "zh": re.compile(rf"^{_TIME_ZH}开会。?$"),
    "en": re.compile(r"^The meeting was called to order at "),
}


def procedural_kind(text: str, lang: str) -> str:
    """"opening", "closing", "agenda" or "vote" for a procedural paragraph, else ""."""
    text = text.strip()
    for kind, pattern in PROCEDURAL[lang]:
        if pattern.search(text):
            return kind
    return ""


_LEADERS = re.compile(r"(?:\.\s?){4,}|(?:…\s?){2,}|(?:·\s?){4,}")
_PAREN = {"en": re.compile(speakers.PAREN_EN), "zh": re.compile(speakers.PAREN_ZH)}
_ENDS_SENTENCE = frozenset(".!?:;。！？：；…\"'”’」』")


def parse_heading(paragraph: str, lang: str) -> tuple[Turn, str] | None:
    """A speech Turn (without paragraphs) and the text after the heading, or None."""
    text = paragraph.strip()
    m = (_ZH_HEADING if lang == "zh" else _EN_HEADING).match(text)
    if not m or _LEADERS.search(m.group("rest")):
        return None
    speaker = m.group("speaker").strip()
    if lang == "en" and not _plausible_name(speaker):
        return None
    country = language = ""
    for part in _PARENS[lang].findall(m.group("parens")):
        inner = part[1:-1].strip()
        if speakers.is_language_note(inner):
            language = language or _language_as_printed(inner, lang)
        elif not country:
            country = inner
    turn = Turn(
        kind="speech",
        paragraphs=[],
        speaker=speaker,
        country=country,
        language=language,
        is_president=speaker in _PRESIDENT,
        heading=text[: m.start("rest")].strip(),
    )
    return turn, m.group("rest").strip()


def _plausible_name(speaker: str) -> bool:
    if speaker.startswith("The "):
        return True
    words = speaker.split()[1:]
    return 0 < len(words) <= 6 and all(
        w[0].isupper() or w in _PARTICLES or _ELIDED.match(w) for w in words
    )


def _language_as_printed(note: str, lang: str) -> str:
    if lang == "zh":
        return note.removeprefix("以").removesuffix("发言")
    return re.sub(
        r"^(?:(?:spoke|speaking)\s+in|interpretation\s+from(?:\s+the)?)\s+",
        "",
        note,
        flags=re.IGNORECASE,
    )


def parse_turns(doc: Document) -> list[Turn]:
    """The turns of a meeting record, in order; [] when no paragraph is a heading or a
    procedural line.

    Every letter and digit of ``doc.paragraphs`` is in exactly one turn's ``heading``,
    ``notes`` or ``paragraphs``.
    """
    lang = doc.lang
    texts = [p.strip() for p in doc.paragraphs]
    opening = next((k for k, text in enumerate(texts) if _CALLED_TO_ORDER[lang].match(text)), 0)
    turns: list[Turn] = []
    current_kind = ""  # procedural kind of the last turn, "" for a speech
    for k, text in enumerate(texts):
        if not text:
            continue
        heading = parse_heading(text, lang) if k >= opening else None
        if heading is not None:
            turn, rest = heading
            turns.append(turn)
            current_kind = ""
            _add_parts(turn, rest, lang)
            continue
        kind = procedural_kind(text, lang)
        if kind and (not turns or kind != current_kind):
            turns.append(Turn(kind="procedural", paragraphs=[text]))
            current_kind = kind
            continue
        if not turns:
            turns.append(Turn(kind="procedural", paragraphs=[]))
        _add_parts(turns[-1], text, lang)
    if lang == "zh":
        for turn in turns:
            if turn.kind == "speech":
                turn.paragraphs = _rejoin_cut_zh(turn.paragraphs)
    if not any(t.kind == "speech" for t in turns) and not any(
        procedural_kind(p, lang) for t in turns for p in t.paragraphs
    ):
        return []
    return turns


def letters(text: str) -> str:
    """The letters and digits of ``text``, in order: what no step may lose or invent."""
    return "".join(ch for ch in text if ch.isalnum())


def check_turns(doc: Document, turns: list[Turn]) -> None:
    """Raise TextLostError unless every letter and digit of ``doc.paragraphs`` is in exactly
    one turn's heading, notes or paragraphs."""
    read = Counter(letters("".join(doc.paragraphs)))
    kept: Counter[str] = Counter()
    for turn in turns:
        kept.update(letters("".join([turn.heading, *turn.notes, *turn.paragraphs])))
    if read != kept:
        lost, added = read - kept, kept - read
        raise TextLostError(
            f"{doc.source or doc.lang}: cutting into turns lost {lost.total()} letters or "
            f"digits ({''.join(lost.elements())[:40]!r}) and added {added.total()} "
            f"({''.join(added.elements())[:40]!r})"
        )


_ZH_OPEN_END = re.compile(r"[^。！？…：；”’）)」』》\].!?:;\"]$")


def _rejoin_cut_zh(paragraphs: list[str]) -> list[str]:
    """Join a paragraph of a Chinese speech that ends without final punctuation to the next:
    the reader took a line end for a paragraph end (a line measured short, a quotation opening
    the next line), and a speech's paragraphs end their sentences. Language notes stay apart."""
    out: list[str] = []
    for paragraph in paragraphs:
        if (
            out
            and _ZH_OPEN_END.search(out[-1])
            and not speakers.is_language_note(out[-1])
            and not speakers.is_language_note(paragraph)
        ):
            out[-1] += paragraph
        else:
            out.append(paragraph)
    return out


def _add_parts(turn: Turn, text: str, lang: str) -> None:
    """Add a paragraph's text to ``turn``: a language note before any text of the turn goes to
    its ``notes`` (it tells the language of the whole speech, as a heading does); a note in
    the middle of a speech is a paragraph of its own, a procedural unit for the memory
    (``（以俄语发言）`` / ``(spoke in Russian)``), and so is the text on each side of it."""
    notes, rest = _split_notes(text, lang)
    if not notes:
        if text:
            turn.paragraphs.append(text)
        return
    for piece in _note_pieces(text, notes, lang):
        if piece in notes and not turn.paragraphs:
            turn.notes.append(piece)
        else:
            turn.paragraphs.append(piece)


def _note_pieces(text: str, notes: list[str], lang: str) -> list[str]:
    """``text`` cut before and after each of its ``notes`` (in order), pieces stripped."""
    pieces, start = [], 0
    for note in notes:
        at = text.index(note, start)
        pieces += [text[start:at], note]
        start = at + len(note)
    pieces.append(text[start:])
    return [p.strip() for p in pieces if p.strip()]


def _split_notes(text: str, lang: str) -> tuple[list[str], str]:
    """The language notes in ``text`` (``(spoke in Russian)`` where a speaker changes language)
    and the text without them. A note stands between sentences: at the start or the end of the
    paragraph, or after a sentence's final punctuation (where the reader joined its line)."""
    notes: list[str] = []
    pieces: list[str] = []
    start = 0
    for m in _PAREN[lang].finditer(text):
        before = text[start : m.start()].rstrip()
        between = not before or before[-1] in _ENDS_SENTENCE or not text[m.end() :].strip()
        if between and speakers.is_language_note(m.group()):
            notes.append(m.group())
            pieces.append(before)
            start = m.end()
    if not notes:
        return [], text
    pieces.append(text[start:])
    return notes, (" " if lang == "en" else "").join(p.strip() for p in pieces if p.strip())


# ---------------------------------------------------------------- command line


def turn_summary(index: int, turn: Turn, width: int = 30) -> dict[str, object]:
    """The fields ``aligner turns`` prints for one turn."""
    text = " ".join(turn.paragraphs)
    return {
        "index": index,
        "kind": turn.kind,
        "speaker": turn.speaker,
        "country": turn.country,
        "language": turn.language,
        "is_president": turn.is_president,
        "heading": turn.heading,
        "notes": list(turn.notes),
        "paragraphs": len(turn.paragraphs),
        "start": text[:width],
    }


def add_command(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "turns",
        help="list the speaker turns of a meeting record",
        description="Read one meeting record (.txt, .docx or .pdf, Chinese or English) and list "
        "its turns: kind, speaker, country or organisation, language of delivery, number of "
        "paragraphs and the first characters.",
    )
    parser.add_argument("file", type=Path, help="the record")
    parser.add_argument("--lang", choices=("zh", "en"), help="language (default: detect)")
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    parser.set_defaults(func=run_turns)


def run_turns(args: argparse.Namespace) -> int:
    from aligner.read.ingest import read_document

    doc = read_document(args.file, args.lang)
    turns = parse_turns(doc)
    rows = [turn_summary(i, t) for i, t in enumerate(turns)]
    if args.json:
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=1)
        print()
        return 0
    if not turns:
        print(f"{doc.source}: no speaker headings found ({len(doc.paragraphs)} paragraphs)")
        return 0
    header = ["#", "kind", "speaker", "country/org", "language", "paras", "start"]
    table = [header] + [
        [
            str(r["index"]),
            str(r["kind"]),
            str(r["speaker"]),
            str(r["country"]),
            str(r["language"]),
            str(r["paragraphs"]),
            str(r["start"]),
        ]
        for r in rows
    ]
    widths = [max(_display_width(row[c]) for row in table) for c in range(len(header) - 1)]
    for row in table:
        cells = [_pad(cell, w) for cell, w in zip(row, widths, strict=False)]
        print("  ".join(cells + [row[-1]]).rstrip())
    speeches = sum(1 for t in turns if t.kind == "speech")
    print(
        f"{len(turns)} turns: {speeches} speech, {len(turns) - speeches} procedural"
        + (f" ({doc.symbol}, {doc.lang})" if doc.symbol else f" ({doc.lang})")
    )
    return 0


def _display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _display_width(text))
