"""Read a document into paragraphs: a PDF, a .docx or text, recognised by content, not name.

Text files are decoded from UTF-8, UTF-16 (with or without a byte-order mark), GB18030 (and its
subsets GBK and GB2312), Big5 or Windows-1252, detected by charset-normalizer. The pages' lines
lose their furniture (``aligner.read.furniture``) and are reflowed into paragraphs
(``aligner.read.reflow``); every document read is checked to have lost no letter or digit.
"""

from __future__ import annotations

import io
import re
import unicodedata
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from aligner.errors import InputError, InputTooLarge, TextLostError
from aligner.models import Document
from aligner.read.columns import split_pages
from aligner.read.furniture import record_symbol, strip_furniture
from aligner.read.reflow import reflow

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")
_NAME_SYMBOL = re.compile(r"(?i)(?:^|[^A-Za-z])([AS])[-_ ](?:(\d+)[-_ ])?PV[-_. ](\d+)")
# What charset-normalizer may choose from: the encodings Chinese and English records come in.
_ENCODINGS = ["utf_8", "gb18030", "big5", "utf_16", "utf_16_le", "utf_16_be", "cp1252"]
_HTML = re.compile(rb"^\s*<(?:!doctype\s+html|html|\?xml)", re.IGNORECASE)


@dataclass(frozen=True)
class ReadLimits:
    """What reading one document may cost; checked before the document is parsed.

    ``max_bytes``: a text file, the expanded parts of a .docx, the text of a PDF;
    ``max_parts``: zip entries of a .docx, pages of a PDF; ``max_tags``: XML tags of a
    .docx (a printed page holds a few hundred; each costs memory once parsed).
    """

    max_bytes: int = 32 * 1024 * 1024
    max_parts: int = 2_000
    max_tags: int = 500_000


DEFAULT_LIMITS = ReadLimits()


def read_document(
    path: str | Path, lang: str | None = None, limits: ReadLimits = DEFAULT_LIMITS
) -> Document:
    """Read the file at ``path`` (a PDF, a .docx or text) as a Document.

    ``lang`` ("zh"/"en") is checked against the text; None detects it.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(21, "Is a directory", str(path))
    data = path.read_bytes()
    return read_bytes(data, path.name, lang, limits)


def read_bytes(
    data: bytes, name: str, lang: str | None = None, limits: ReadLimits = DEFAULT_LIMITS
) -> Document:
    """Read a file's bytes; ``name`` is only for messages and the symbol, the bytes decide.

    Over ``limits`` (checked before parsing) raises ``InputTooLarge``.
    """
    if not data.strip():
        raise InputError(f"{name}: the file is empty")
    kind = file_kind(data, name)
    encoding = ""
    if kind == "pdf":
        pages = _pdf_pages(data, name, limits)
    elif kind == "docx":
        pages = [_docx_lines(data, name, limits)]
    else:
        if len(data) > limits.max_bytes:
            raise InputTooLarge(f"{name}: larger than {limits.max_bytes} bytes")
        text, encoding = _decode(data, name)
        pages = split_pages([page.splitlines() for page in text.split("\f")])
    lines = [line for page in pages for line in page]
    detected = detect_language("".join(lines))
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
    symbol = record_symbol(lines) or symbol_from_name(name)
    body, removed = strip_furniture(pages)
    printed = kind == "pdf" or len(pages) > 1 or bool(removed)  # lines of printed pages
    paragraphs = reflow(body, lang, from_pdf=printed)
    if not paragraphs:
        what = "only page headers and footers" if removed else "no text found"
        raise InputError(f"{name}: {what}")
    doc = Document(
        paragraphs=paragraphs, lang=lang, source=name, symbol=symbol,
        removed=removed, encoding=encoding,
    )
    check_lossless("\n".join(lines), doc)
    kept = sum(ch.isalnum() for p in paragraphs for ch in p)
    dropped = sum(ch.isalnum() for r in removed for ch in r)
    if dropped > kept:
        raise InputError(
            f"{name}: mostly page headers and footers ({dropped} letters and digits of them,"
            f" {kept} of text); is this a meeting record?"
        )
    return doc


def file_kind(data: bytes, name: str) -> str:
    """"pdf", "docx" or "text", from the bytes; a .pdf or .docx name is believed when broken."""
    suffix = Path(name).suffix.lower()
    head = data[:1024]
    if b"%PDF-" in head or suffix == ".pdf":
        return "pdf"
    if data.startswith(b"PK\x03\x04") or suffix == ".docx":
        if suffix != ".docx" and not _is_docx(data):
            raise InputError(f"{name}: a zip archive, not a .docx, PDF or text file")
        return "docx"
    refused = _refused_kind(data)
    if refused:
        shown = suffix or refused
        hint = "" if refused == "HTML" else " (save it as .docx)"
        raise InputError(f"{name}: unsupported file type ({shown}){hint}; use .txt, .docx or .pdf")
    return "text"


def _refused_kind(data: bytes) -> str:
    """The name of a document format that is not read (old Word, RTF, HTML), or ""."""
    if data.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "Word 97-2003"
    if data.startswith(b"{\\rtf"):
        return "RTF"
    if _HTML.match(data.lstrip(b"\xef\xbb\xbf")[:200]):
        return "HTML"
    return ""


def _is_docx(data: bytes) -> bool:
    from aligner.read.archive import BrokenArchive, directory_size

    try:
        if directory_size(io.BytesIO(data))[0] > DEFAULT_LIMITS.max_parts:
            return False  # not read any further: its directory alone would cost
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "word/document.xml" in archive.namelist()
    except (zipfile.BadZipFile, BrokenArchive, OSError):
        return False


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
    """The text and the encoding it was decoded with."""
    if data.startswith(b"\xef\xbb\xbf"):
        encoding, data = "utf-8", data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    else:
        try:
            encoding, text = "utf-8", data.decode("utf-8")
        except UnicodeDecodeError:
            encoding, text = _detect(data, name)
        if "\x00" in text:
            encoding, text = _detect(data, name)
        return _checked(text, name), encoding
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise InputError(f"{name}: not valid {encoding.upper()} text (byte {exc.start})") from None
    return _checked(text, name), encoding


def _detect(data: bytes, name: str) -> tuple[str, str]:
    """The encoding and the text, as charset-normalizer reads them into Chinese or English."""
    from charset_normalizer import from_bytes

    for match in from_bytes(data, cp_isolation=_ENCODINGS):
        text = str(match)
        letters = [ch for ch in text if ch.isalpha()]
        ours = sum(1 for ch in letters if _CJK.match(ch) or _LATIN.match(ch))
        if letters and ours >= 0.9 * len(letters):
            return match.encoding.replace("_", "-"), text
    raise InputError(
        f"{name}: binary data, or text in an encoding other than UTF-8, UTF-16, GB18030,"
        " Big5 or Windows-1252"
    )


def _checked(text: str, name: str) -> str:
    if "\x00" in text or sum(1 for c in text[:4000] if _is_control(c)) > 10:
        raise InputError(f"{name}: binary data, not text")
    if not text.strip():
        raise InputError(f"{name}: the file is empty")
    return text


def _is_control(ch: str) -> bool:
    return unicodedata.category(ch) == "Cc" and ch not in "\n\r\t\f\v"


def _docx_lines(data: bytes, name: str, limits: ReadLimits = DEFAULT_LIMITS) -> list[str]:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    from aligner.read.archive import BrokenArchive, check_zip

    try:
        check_zip(
            io.BytesIO(data),
            max_entries=limits.max_parts,
            max_bytes=limits.max_bytes,
            what=name,
            count_tags=lambda member: member.lower().endswith((".xml", ".rels")),
            max_tags=limits.max_tags,
        )
    except BrokenArchive as exc:
        raise InputError(f"{name}: not a readable .docx file ({exc})") from None
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


def _pdf_pages(data: bytes, name: str, limits: ReadLimits = DEFAULT_LIMITS) -> list[list[str]]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise InputError(f"{name}: the PDF is encrypted; save an unprotected copy")
        if len(reader.pages) > limits.max_parts:
            raise InputTooLarge(f"{name}: more than {limits.max_parts} pages")
        pages, size = [], 0
        for page in reader.pages:
            pages.append((page.extract_text() or "").splitlines())
            size += sum(len(line) for line in pages[-1])
            if size > limits.max_bytes:
                raise InputTooLarge(f"{name}: more than {limits.max_bytes} characters of text")
    except InputError:
        raise
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise InputError(f"{name}: not a readable PDF ({exc})") from None
    if not any(line.strip() for page in pages for line in page):
        raise InputError(f"{name}: the PDF has no text layer (a scan?); OCR it first")
    return pages
