"""Read a document (.txt, .docx, .pdf) into paragraphs.

Text comes in three shapes and each is reflowed into one string per paragraph:
- one paragraph per line (text saved from Word, or a .docx);
- English text extracted from a PDF: wrapped lines, hyphenated line ends, page headers and footers;
- Chinese text extracted from a PDF: one printed column line (about 22 characters) per line, a
  blank line after every line, paragraph ends unmarked. A paragraph's first line is indented by
  two characters, so it is narrower than a full line; its last line usually ends short with
  final punctuation. Spaces left inside numbers and between Chinese characters are removed.
"""

from __future__ import annotations

import io
import re
import statistics
import unicodedata
from collections import Counter
from pathlib import Path

from aligner.errors import InputError, TextLostError
from aligner.models import Document
from aligner.speakers import EN_SPEAKER, PAREN_EN, PAREN_ZH, ZH_SPEAKER

KINDS = (".txt", ".docx", ".pdf")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")
_SPACE = re.compile(r"[ \t\u00a0\u2000-\u200b\u3000]+")

# Page furniture of UN documents: symbol, page "4/26", job number "17-24158 (E)", date line,
# and header/footer lines combining them with the running title.
_SYMBOL = r"[A-Z]{1,2}/(?:[A-Z0-9.\-]+/)*[A-Z0-9.\-]*\d[A-Z0-9.\-]*"
_PAGE = r"\d{1,4}/\d{1,4}"
_JOB = r"\d{2}-\d{5}(?:\s*\([A-Z]\))?"
_DATE = r"\d{2}/\d{2}/\d{4}"
_FURNITURE = re.compile(
    rf"^(?:{_SYMBOL}|{_PAGE}|{_JOB}|{_DATE}|{_PAGE}\s+{_JOB}|{_JOB}\s+{_PAGE}"
    rf"|{_SYMBOL}\s.{{0,120}}\s{_DATE}|{_DATE}\s.{{0,120}}\s{_SYMBOL}|\*\d{{7,}}\*)$"
)
_RECORD_SYMBOL = re.compile(r"^([A-Z]{1,2}/(?:\d+/)?PV\.\d+(?:/Resumption\d*)?)\b")
_NAME_SYMBOL = re.compile(r"(?i)(?:^|[^A-Za-z])([AS])[-_ ](?:(\d+)[-_ ])?PV[-_. ](\d+)")

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
_ZH_BREAK = re.compile(
    rf"^(?:{ZH_SPEAKER})(?:{PAREN_ZH}){{0,3}}(?:：|$)"
    r"|^(?:上午|下午|晚上|中午)\d{1,2}时|^进行了(?:举手|记录)表决|^(?:赞成|反对|弃权)[:：]"
)


def read_document(path: str | Path, lang: str | None = None) -> Document:
    """Read ``path`` (.txt in UTF-8 or UTF-16 with BOM, .docx, .pdf) as a Document.

    ``lang`` ("zh"/"en") is checked against the text; None detects it.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(21, "Is a directory", str(path))
    data = path.read_bytes()
    return read_bytes(data, path.name, lang)


def read_bytes(data: bytes, name: str, lang: str | None = None) -> Document:
    """Read an uploaded file's bytes; ``name`` (its file name) decides the kind."""
    suffix = Path(name).suffix.lower()
    if suffix not in KINDS:
        hint = " (save it as .docx)" if suffix in (".doc", ".rtf", ".odt") else ""
        shown = suffix or "no extension"
        raise InputError(
            f"{name}: unsupported file type ({shown}){hint}; use .txt, .docx or .pdf"
        )
    if not data.strip():
        raise InputError(f"{name}: the file is empty")
    encoding = ""
    if suffix == ".txt":
        text, encoding = _decode(data, name)
        lines = text.splitlines()
        from_pdf = False
    elif suffix == ".docx":
        lines = _docx_lines(data, name)
        from_pdf = False
    else:
        lines = _pdf_lines(data, name)
        from_pdf = True
    text_for_lang = "".join(lines)
    detected = detect_language(text_for_lang)
    if detected is None:
        raise InputError(f"{name}: no Chinese or English text found")
    if lang is None:
        lang = detected
    elif lang not in ("zh", "en"):
        raise InputError(f"unsupported language {lang!r}: use 'zh' or 'en'")
    elif lang != detected:
        want = {"zh": "Chinese", "en": "English"}
        raise InputError(
            f"{name}: expected {want[lang]} text but it looks like {want[detected]}"
        )
    symbol = _symbol_from_lines(lines) or symbol_from_name(name)
    paragraphs, removed = reflow(lines, lang, from_pdf=from_pdf)
    if not paragraphs:
        raise InputError(f"{name}: no text found")
    doc = Document(
        paragraphs=paragraphs, lang=lang, source=name, symbol=symbol,
        removed=removed, encoding=encoding,
    )
    check_lossless("\n".join(lines), doc)
    return doc


def _letters(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum())


def check_lossless(raw_text: str, doc: Document) -> None:
    """Raise TextLostError unless every letter and digit of ``raw_text`` is in the document once.

    The letters and digits of the paragraphs and of the removed furniture together must be those
    of the input, and the paragraphs' must come in the input's order.
    """
    raw = _letters(raw_text)
    body = _letters("".join(doc.paragraphs))
    removed = _letters("".join(doc.removed))
    if len(raw) == len(body) + len(removed) and Counter(raw) == Counter(body) + Counter(removed):
        chars = iter(raw)
        if all(ch in chars for ch in body):
            return
        raise TextLostError(f"{doc.source}: the reader reordered the text")
    missing = Counter(raw) - Counter(body) - Counter(removed)
    extra = Counter(body) + Counter(removed) - Counter(raw)
    raise TextLostError(
        f"{doc.source}: the reader lost {sum(missing.values())} letters or digits"
        f" ({''.join(sorted(missing.elements()))[:40]!r}) and added {sum(extra.values())}"
        f" ({''.join(sorted(extra.elements()))[:40]!r})"
    )


def detect_language(text: str) -> str | None:
    """"zh" when Chinese characters carry most of the text, else "en"; None without letters.

    A Chinese character carries about as much text as four Latin letters.
    """
    cjk = len(_CJK.findall(text))
    latin = len(_LATIN.findall(text))
    if cjk + latin == 0:
        return None
    return "zh" if cjk * 4 > latin else "en"


def symbol_from_name(name: str) -> str:
    """UN record symbol from a file name such as ``S-PV-8017.zh.txt`` → ``S/PV.8017``."""
    m = _NAME_SYMBOL.search(Path(name).name)
    if not m:
        return ""
    body, session, number = m.groups()
    middle = f"{session}/" if session else ""
    return f"{body.upper()}/{middle}PV.{number}"


# ---------------------------------------------------------------- decoding and extraction


def _decode(data: bytes, name: str) -> tuple[str, str]:
    if data.startswith(b"\xef\xbb\xbf"):
        encoding, data = "utf-8", data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    else:
        if data.startswith(b"%PDF"):
            raise InputError(f"{name}: this is a PDF file; give it the .pdf extension")
        if data.startswith(b"PK\x03\x04"):
            raise InputError(f"{name}: this is a zip or .docx file, not plain text")
        if b"\x00" in data:
            raise InputError(f"{name}: binary data, not text (UTF-16 needs a byte-order mark)")
        encoding = "utf-8"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{name}: not valid {encoding.upper()} text (byte {exc.start}); save it as UTF-8"
        ) from None
    if "\x00" in text or sum(1 for c in text[:4000] if _is_control(c)) > 10:
        raise InputError(f"{name}: binary data, not text")
    if not text.strip():
        raise InputError(f"{name}: the file is empty")
    return text, encoding


def _is_control(ch: str) -> bool:
    return unicodedata.category(ch) == "Cc" and ch not in "\n\r\t\f\v"


def _docx_lines(data: bytes, name: str) -> list[str]:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, KeyError, ValueError, OSError) as exc:
        raise InputError(f"{name}: not a readable .docx file ({exc})") from None
    except Exception as exc:  # zipfile.BadZipFile, lxml errors on a damaged file
        raise InputError(f"{name}: not a readable .docx file ({type(exc).__name__})") from None
    lines: list[str] = []
    body = document.element.body
    qn = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
    for child in body.iterchildren():
        if child.tag == qn + "p":
            lines.append(_docx_text(child, qn))
            lines.append("")
        elif child.tag == qn + "tbl":
            for p in child.iter(qn + "p"):
                lines.append(_docx_text(p, qn))
                lines.append("")
    return lines


def _docx_text(p, qn: str) -> str:
    return "".join(
        (node.text or "") if node.tag == qn + "t" else " "
        for node in p.iter(qn + "t", qn + "tab", qn + "br")
    )


def _pdf_lines(data: bytes, name: str) -> list[str]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise InputError(f"{name}: the PDF is encrypted; save an unprotected copy")
        pages = [page.extract_text() or "" for page in reader.pages]
    except InputError:
        raise
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise InputError(f"{name}: not a readable PDF ({exc})") from None
    lines = [line for page in pages for line in page.splitlines()]
    if not any(line.strip() for line in lines):
        raise InputError(f"{name}: the PDF has no text layer (a scan?); OCR it first")
    return lines


def _symbol_from_lines(lines: list[str]) -> str:
    for line in lines[:400]:
        m = _RECORD_SYMBOL.match(line.strip())
        if m and _FURNITURE.match(line.strip()):
            return m.group(1)
    return ""


# ---------------------------------------------------------------- reflow


def reflow(
    lines: list[str], lang: str, *, from_pdf: bool = False
) -> tuple[list[str], list[str]]:
    """Turn lines into paragraphs, wrapped lines joined; also the page furniture dropped."""
    removed = [line.strip() for line in lines if _FURNITURE.match(line.strip())]
    kept = [line for line in lines if not _FURNITURE.match(line.strip())]
    nonblank = [line for line in kept if line.strip()]
    if not nonblank:
        return [], removed
    if not from_pdf and not _looks_wrapped(nonblank, lang):
        return [p for p in (_clean(line.strip(), lang) for line in nonblank) if p], removed
    blocks = _blocks(kept)
    paragraphs: list[str] = []
    for block in blocks:
        if lang == "zh":
            paragraphs.extend(_reflow_zh(block))
        else:
            paragraphs.extend(_reflow_en(block))
    return [p for p in paragraphs if p], removed


def _looks_wrapped(lines: list[str], lang: str) -> bool:
    """Lines of a printed column: short, of similar length, most without final punctuation."""
    if len(lines) < 8:
        return False
    widths = [_width(line) for line in lines]
    limit = 30 if lang == "zh" else 110
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


def _column_width(lines: list[str]) -> float:
    widths = sorted(_width(line) for line in lines)
    return widths[int(0.8 * (len(widths) - 1))]


def _reflow_zh(lines: list[str]) -> list[str]:
    full = _column_width(lines)
    widths = [_width(line) for line in lines]
    paragraphs: list[str] = []
    current: list[str] = []
    for i, line in enumerate(lines):
        stripped = line.strip(" \u2004\u3000\t")
        if current and _ZH_BREAK.match(stripped):
            paragraphs.append(_clean("".join(current), "zh"))
            current = []
        current.append(line.lstrip(" \u3000\t").rstrip("\t"))
        if _zh_paragraph_ends(lines, widths, full, i):
            paragraphs.append(_clean("".join(current), "zh"))
            current = []
    return paragraphs


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
    if widths[i] < full - 4:
        return True
    if widths[i + 1] >= full - 1:
        return False
    if _ends_final_zh(lines[i]):
        return True
    next_is_first = full - 4 <= widths[i + 1] < full - 1 and not _ends_final_zh(lines[i + 1])
    return widths[i] >= full - 1 and next_is_first


def _ends_final_zh(line: str) -> bool:
    return line.rstrip(" \u2004").rstrip(_CLOSE_ZH + ")").endswith(tuple(_FINAL_ZH))


_HYPHEN_END = re.compile(r"([A-Za-z]+)-$")
_WORD_START = re.compile(r"^([A-Za-z]+)")
_COMPOUND_END = re.compile(r"[A-Za-z]-[A-Za-z]+-$")  # "Officer-in-" | "Charge"
_COMPOUND_START = re.compile(r"^[A-Za-z]+-[A-Za-z]")  # "self-" | "defence-related"


def _reflow_en(lines: list[str]) -> list[str]:
    stripped = [line.strip() for line in lines]
    lengths = sorted(len(s) for s in stripped)
    full = lengths[int(0.8 * (len(lengths) - 1))]
    # PDF text keeps a paragraph's first-line indent as leading spaces; use it when present.
    indented = [line[:1].isspace() for line in lines]
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
        if (short and bare.endswith(tuple(_FINAL_EN))) or len(line) < 0.6 * full:
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
    if current.endswith(("—", "–", "/")) or line.startswith(("—", "–")):
        return current + line
    return current + " " + line


def _clean(text: str, lang: str) -> str:
    """Normalise spaces: one between words; none between Chinese characters or inside numbers."""
    text = text.replace("\u00ad", "")
    if lang == "en":
        return _SPACE.sub(" ", text).strip()

    def keep(m: re.Match[str]) -> str:
        s, e = m.start(), m.end()
        left = text[s - 1] if s else ""
        right = text[e] if e < len(text) else ""
        if left.isascii() and right.isascii() and left.isalnum() and right.isalnum():
            return "" if left.isdigit() and right.isdigit() else " "
        return ""

    return _SPACE.sub(keep, text).strip()
