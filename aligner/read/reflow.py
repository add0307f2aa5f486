"""Paragraphs from the lines of a printed page: wrapped lines joined, paragraph ends found.

Text comes in three shapes and each is reflowed into one string per paragraph:
- one paragraph per line (text saved from Word, or a .docx);
- English text extracted from a PDF: wrapped lines, hyphenated line ends;
- Chinese text extracted from a PDF: one printed line per line (about 22 characters in the
  two-column layout, 38 in the single-column one), sometimes a blank line after every line,
  paragraph ends unmarked. A paragraph's first line is indented by two characters, so it is
  narrower than a full line; its last line usually ends short with final punctuation. Spaces
  left inside numbers and between Chinese characters are removed.
Lines of dot leaders (the cover page's President and Members) are paragraphs of their own.
"""

from __future__ import annotations

import re
import statistics
import unicodedata
from collections import Counter

from aligner.record.speakers import EN_SPEAKER, PAREN_EN, PAREN_ZH, ZH_SPEAKER

_PAREN_SPACE = re.compile(r"(?<=\() | (?=\))")  # "( spoke in French )" from some PDF readers
_WORD = re.compile(r"[A-Za-z]+")
_SPLIT_WORD = re.compile(r"(?<![A-Za-z\-'’])([A-Za-z]+) (?=([a-z]+)(?![A-Za-z\-'’]))")
_LEADER = re.compile(r"(?:\. ?){8,}|…{3,}")
_SPACE = re.compile(r"[ \t\u00a0\u2000-\u200b\u3000]+")
_FINAL_ZH = "。！？：…"
_CLOSE_ZH = "”’）」』》】"
_FINAL_EN = ".!?:;"
_CLOSE_EN = "\"'”’)]"
# Starts of paragraphs that never continue a previous line: speaker headings (also one cut at
# the end of the line, before its colon), procedural lines.
_EN_BREAK = re.compile(
    rf"^(?:{EN_SPEAKER})(?:\s*{PAREN_EN}){{0,3}}\s*:"
    r"|^(?:The (?:Acting )?President|(?:Mr|Mrs|Ms|Miss|Dr|Sir|Dame)\.?(?:\s[A-Z][^\s():,]*){1,5})"
    r"\s\((?:[^()]|\([^()]*\))*(?:\)\s*\((?:[^()]|\([^()]*\))*)?\)?$"
    r"|^The meeting (?:was|rose|resumed)|^A (?:recorded )?vote was taken"
    r"|^Adoption of the agenda|^The agenda was adopted"
    r"|^(?:In favour|Against|Abstaining|Abstentions?):"
)
_ZH_HEADING_ONLY = re.compile(rf"^(?:{ZH_SPEAKER})(?:{PAREN_ZH}){{0,3}}：?$")
# Lines of a Chinese cover page that are paragraphs of their own whatever their width: the
# print marks, the date and place, the record's name, the heading of the agenda.
_ZH_OWN_LINE = re.compile(
    r"^(?:无障碍文件\s*请回收|无障碍文件|请回收|联合国\s*[A-Z]{1,2}/\S+|安全理事会|大会"
    r"|第\S{1,12}(?:年|届会议|次会议|次全体会议)|\d{4}年\d{1,2}月\d{1,2}日\S{0,12}举行|纽约"
    r"|临时逐字记录|逐字记录|议程项目|通过议程|议程通过。?)$"
)
# A title that cites a report: a one-line paragraph ending with a document symbol in brackets.
_ZH_CITING_TITLE = re.compile(r"[(（][A-Z]{1,2}/[^()（）]{1,30}\d[)）]$")
_ZH_BREAK = re.compile(
    rf"^(?:{ZH_SPEAKER})(?:{PAREN_ZH}){{0,3}}(?:：|$)"
    r"|^(?:上午|下午|晚上|中午)\d{1,2}时|^进行了(?:举手|记录)表决|^(?:赞成|反对|弃权)[:：]"
)


# The print marks of a cover page (``无障碍文件 请回收``, ``Accessible document Please
# recycle``), which an extraction may put on the line of the text that follows them.
_PRINT_MARK = {
    "zh": re.compile(r"^\s*(?:无障碍文件\s*)?请回收|^\s*无障碍文件"),
    "en": re.compile(
        r"^\s*(?:Accessible document\s*)?Please recycle\b|^\s*Accessible document\b"
    ),
}


def _split_print_marks(lines: list[str], lang: str) -> list[str]:
    """A print mark at the start of a line as a line (so a paragraph) of its own."""
    out: list[str] = []
    for line in lines:
        m = _PRINT_MARK[lang].match(line)
        if m and line[m.end() :].strip():
            out.extend([line[: m.end()], line[m.end() :]])
        else:
            out.append(line)
    return out


def reflow(lines: list[str], lang: str, *, from_pdf: bool = False) -> list[str]:
    """Turn lines (page furniture already gone) into paragraphs, wrapped lines joined."""
    lines = _split_print_marks(lines, lang)
    nonblank = [line for line in lines if line.strip()]
    if not nonblank:
        return []
    if not from_pdf and not _looks_wrapped(nonblank, lang):
        return [p for p in (_clean(line.strip(), lang) for line in nonblank) if p]
    full = _column_width(nonblank, lang)
    paragraphs: list[str] = []
    for block in _blocks(lines):
        for part in _leader_split(block):
            if lang == "zh":
                paragraphs.extend(_reflow_zh(part, full))
            else:
                paragraphs.extend(_reflow_en(part, full))
    if lang == "en":
        paragraphs = _rejoin_split_words(paragraphs)
    return [p for p in paragraphs if p]


def _rejoin_split_words(paragraphs: list[str]) -> list[str]:
    """Undo spaces an extraction put inside a word (``fou nd``, ``becaus e``).

    Two pieces are joined when neither occurs anywhere else in the document as a word, while
    the word they make does: real words recur, the pieces of a broken one do not.
    """
    counts = Counter(w.lower() for p in paragraphs for w in _WORD.findall(p))

    def join(m: re.Match[str]) -> str:
        left, right = m.group(1), m.group(2)
        whole = (left + right).lower()
        if counts[left.lower()] == 1 and counts[right.lower()] == 1 and counts[whole] >= 1:
            return left
        return m.group(0)

    return [_SPLIT_WORD.sub(join, p) for p in paragraphs]


def _leader_split(lines: list[str]) -> list[list[str]]:
    """Lines with dot leaders (``China ........ Mr. Sun Lei``) as blocks of their own."""
    parts: list[list[str]] = [[]]
    for line in lines:
        if _LEADER.search(line):
            parts.extend([[line], []])
        else:
            parts[-1].append(line)
    return [part for part in parts if part]


def _looks_wrapped(lines: list[str], lang: str) -> bool:
    """Lines of a printed column: short, of similar length, most without final punctuation."""
    if len(lines) < 8:
        return False
    widths = [_width(line) for line in lines]
    limit = 50 if lang == "zh" else 110
    if statistics.median(widths) > limit:
        return False
    final = _FINAL_ZH if lang == "zh" else _FINAL_EN
    close = _CLOSE_ZH if lang == "zh" else _CLOSE_EN
    open_ended = sum(1 for line in lines if not line.rstrip().rstrip(close).endswith(tuple(final)))
    return open_ended >= 0.4 * len(lines)


def _blocks(lines: list[str]) -> list[list[str]]:
    """Split at blank lines when they mark paragraphs; ignore them when every line has one."""
    nonblank = sum(1 for line in lines if line.strip())
    blank_runs = sum(
        1 for i, line in enumerate(lines) if not line.strip() and i and lines[i - 1].strip()
    )
    if blank_runs >= 0.6 * nonblank:  # a blank line after (nearly) every line: no meaning
        return [[line for line in lines if line.strip()]]
    blocks: list[list[str]] = [[]]
    for line in lines:
        if line.strip():
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    return [b for b in blocks if b]


def _width(line: str) -> float:
    """Printed width in ems: Chinese characters and full-width forms 1, others ½."""
    text = line.strip(" \u2004\u3000\t")
    total = 0.0
    for ch in text:
        if ch.isspace():
            total += 0.5
        elif unicodedata.east_asian_width(ch) in "WFA":
            total += 1.0
        else:
            total += 0.5
    return total


def _column_width(lines: list[str], lang: str) -> float:
    """The width of a full line of the printed column (ems for Chinese, characters for English).

    Lines with dot leaders (the cover page's list of members) run past the column and are left
    out: on a short record they would otherwise be a fifth of the lines."""
    lines = [line for line in lines if not _LEADER.search(line)] or lines
    if lang == "zh":
        widths = sorted(_width(line) for line in lines)
    else:
        widths = sorted(len(line.strip()) for line in lines)
    return widths[int(0.8 * (len(widths) - 1))]


def _reflow_zh(lines: list[str], full: float) -> list[str]:
    widths = [_width(line) for line in lines]
    paragraphs: list[str] = []
    current: list[str] = []
    for i, line in enumerate(lines):
        stripped = line.strip(" \u2004\u3000\t")
        if current and (_ZH_BREAK.match(stripped) or _ZH_OWN_LINE.match(stripped)):
            paragraphs.append(_clean(_join_zh(current), "zh"))
            current = []
        current.append(line.lstrip(" \u3000\t").rstrip("\t"))
        title = len(current) == 1 and _ZH_CITING_TITLE.search(stripped)
        if title or _ZH_OWN_LINE.match(stripped) or _zh_paragraph_ends(lines, widths, full, i):
            paragraphs.append(_clean(_join_zh(current), "zh"))
            current = []
    return paragraphs


def _join_zh(lines: list[str]) -> str:
    """Join the lines of a Chinese paragraph: no space, except between two Latin words (a name
    wrapped at its space, ``Vasily`` | ``Nebenzya``)."""
    out = lines[0] if lines else ""
    for line in lines[1:]:
        out += (" " if _is_latin(out[-1:]) and _is_latin(line[:1]) else "") + line
    return out


def _is_latin(ch: str) -> bool:
    return ch.isascii() and ch.isalpha()


def _zh_paragraph_ends(lines: list[str], widths: list[float], full: float, i: int) -> bool:
    """Whether line ``i`` of a printed Chinese column is the last line of its paragraph.

    New paragraphs start indented, so a full-width line is always a continuation.
    """
    if i == len(lines) - 1:
        return True
    line = lines[i].strip(" \u2004\u3000\t")
    nxt = lines[i + 1].strip(" \u2004\u3000\t")
    if _ZH_HEADING_ONLY.match(line):
        return False  # a speaker heading whose text starts on the next line
    if _ZH_BREAK.match(nxt):
        return True
    if widths[i] < full - 4 and _width(_LEADING_RUN.match(nxt).group()) < full - widths[i] - 3:
        return True  # short, and the next line's first word would have fitted
    if widths[i + 1] >= full - 1:
        return False
    # A full line ending with a colon goes on: the colon ends a clause ("我再说一遍：")
    # more often than a paragraph, and the alignment decides what a sentence is.
    return _ends_final_zh(lines[i]) and not line.rstrip(_CLOSE_ZH).endswith("：")


# What a Chinese line starts with that the printer does not break: a run of Latin letters,
# digits and signs (``(S/2026/8)``, a web address), else one character.
_LEADING_RUN = re.compile(r"[\x21-\x7e]+|.")


def _ends_final_zh(line: str) -> bool:
    return line.rstrip(" \u2004").rstrip(_CLOSE_ZH + ")").endswith(tuple(_FINAL_ZH))


_DASHES = ("—", "–")
_TITLE_END = re.compile(r"\b(?:Mr|Mrs|Ms|Messrs|Mmes|Dr|Prof|St|Sr|Jr|No|Nos|Art|Arts)\.$")
_OPEN_EN = "\"'“‘(["
_HYPHEN_END = re.compile(r"([A-Za-z]+)-$")
_WORD_START = re.compile(r"^([A-Za-z]+)")
_COMPOUND_END = re.compile(r"[A-Za-z]-[A-Za-z]+-$")  # "Officer-in-" | "Charge"
_COMPOUND_START = re.compile(r"^[A-Za-z]+-[A-Za-z]")  # "self-" | "defence-related"


def _reflow_en(lines: list[str], full: float) -> list[str]:
    stripped = [line.strip() for line in lines]
    # PDF text keeps a paragraph's first-line indent as leading spaces; use it when present.
    # A first line is indented more than the line before it, or as much when that line ends a
    # sentence; the lines of an indented list are not.
    margins = [len(line) - len(line.lstrip()) for line in lines]
    base = min(margins)
    ends = [line.rstrip(_CLOSE_EN).endswith(tuple(_FINAL_EN)) for line in stripped]
    indented = [
        i > 0 and margins[i] > base and (margins[i] > margins[i - 1] or ends[i - 1])
        for i in range(len(lines))
    ]
    use_indent = 0.03 <= sum(indented) / len(lines) <= 0.7
    vocabulary = _vocabulary(" ".join(stripped))
    paragraphs: list[str] = []
    current = ""
    for i, line in enumerate(stripped):
        if current and (_EN_BREAK.match(line) or (use_indent and indented[i])):
            paragraphs.append(_clean(current, "en"))
            current = ""
        current = _join_en(current, line, vocabulary) if current else line
        bare = line.rstrip(_CLOSE_EN)
        short = len(line) < 0.8 * full
        # A line that ends short of where the next word would have fitted ends its paragraph.
        following = stripped[i + 1].split(" ", 1)[0] if i + 1 < len(stripped) else ""
        room = len(line) + 1 + len(following) < 0.85 * full
        # No paragraph starts with a small letter, none ends with "Mr.".
        continued = following.lstrip(_OPEN_EN)[:1].islower() or bool(_TITLE_END.search(line))
        if not continued and ((short and bare.endswith(tuple(_FINAL_EN))) or room):
            paragraphs.append(_clean(current, "en"))
            current = ""
    if current:
        paragraphs.append(_clean(current, "en"))
    return paragraphs


def _vocabulary(text: str) -> set[str]:
    """Words of the text, and every two adjacent parts of its hyphenated compounds."""
    words = {w.lower() for w in re.findall(r"[A-Za-z]+(?:-[A-Za-z]+)*", text)}
    for word in [w for w in words if "-" in w]:
        parts = word.split("-")
        words.update(f"{a}-{b}" for a, b in zip(parts, parts[1:], strict=False))
    return words


def _join_en(current: str, line: str, vocabulary: set[str]) -> str:
    """Join a wrapped line; undo end-of-line hyphenation unless the document keeps the hyphen."""
    head = _HYPHEN_END.search(current)
    tail = _WORD_START.match(line)
    if head and tail and not current.endswith("--"):
        left, right = head.group(1), tail.group(1)
        hyphenated = f"{left}-{right}".lower()
        compound = bool(_COMPOUND_END.search(current) or _COMPOUND_START.match(line))
        known = hyphenated in vocabulary and (left + right).lower() not in vocabulary
        if right[0].isupper() or compound or known:
            return current + line
        return current[:-1] + line
    if current.endswith("/"):
        return current + line
    if current.endswith(_DASHES):  # "aggressor —" | "the": spaced; "word—" | "next": not
        return current + (" " if current[-2:-1].isspace() else "") + line
    if line.startswith(_DASHES):
        return current + (" " if line[1:2].isspace() else "") + line
    return current + " " + line


def _clean(text: str, lang: str) -> str:
    """Normalise spaces: one between words; none between Chinese characters or inside numbers."""
    text = text.replace("\u00ad", "")
    if lang == "en":
        return _PAREN_SPACE.sub("", _SPACE.sub(" ", text)).strip()

    def keep(m: re.Match[str]) -> str:
        s, e = m.start(), m.end()
        left = text[s - 1] if s else ""
        right = text[e] if e < len(text) else ""
        if left.isascii() and right.isascii() and left.isalnum() and right.isalnum():
            return "" if left.isdigit() and right.isdigit() else " "
        return ""

    return _SPACE.sub(keep, text).strip()
