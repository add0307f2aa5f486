"""TMX 1.4b translation memories: a streaming writer and a hardened streaming reader (lxml).

Writing goes through lxml's incremental ``etree.xmlfile`` into a temporary file beside the
target, renamed into place only once the document is complete, so a million units take
constant memory and a failure leaves nothing behind. Reading uses ``iterparse`` and frees each
``tu`` once it is read; it refuses entity declarations (billion laughs, XXE), never loads a DTD
or touches the network, and reports malformed XML with the line and column of the first error.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

from lxml import etree

from aligner import __version__
from aligner.errors import InputError
from aligner.models import SentencePair, TranslationUnit

log = logging.getLogger(__name__)

CREATION_TOOL = "Concordia"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
DOCTYPE = '<!DOCTYPE tmx SYSTEM "tmx14.dtd">'
# Provenance properties, in the order they are written before the tuvs.
PROP_TYPES = ("x-document", "x-speaker", "x-country", "x-turn", "x-score")

# Characters XML 1.0 does not allow (C0 controls but tab/LF/CR, surrogates, U+FFFE/U+FFFF).
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_LANG_CODE = re.compile(r"[A-Za-z]{1,8}(?:[-_][A-Za-z0-9]{1,8})*")
_TMX_DATE = re.compile(r"\d{8}T\d{6}Z")
_POSITION_SUFFIX = re.compile(r"(?:, line \d+, column \d+)+$")


class TMXError(InputError):
    """A TMX file that cannot be read, or units that cannot be written as TMX."""


# ---------------------------------------------------------------------------- shared helpers


@lru_cache(maxsize=1024)
def normalize_lang(code: str) -> str:
    """Canonical casing of a language tag: ``ZH_cn`` → ``zh-CN``, ``zh_hans`` → ``zh-Hans``."""
    parts = code.strip().replace("_", "-").split("-")
    out = [parts[0].lower()]
    for part in parts[1:]:
        if len(part) == 4 and part.isalpha():
            out.append(part.title())
        elif (len(part) == 2 and part.isalpha()) or (len(part) == 3 and part.isdigit()):
            out.append(part.upper())
        else:
            out.append(part.lower())
    return "-".join(out)


@lru_cache(maxsize=1024)
def primary_lang(code: str) -> str:
    """The primary language subtag: ``zh-CN`` → ``zh``."""
    return code.strip().replace("_", "-").split("-")[0].lower()


def clean_text(text: str) -> str:
    """Text safe for XML 1.0: forbidden control characters removed, outer whitespace stripped.

    Everything XML allows stays, bidi marks and zero-width characters included.
    """
    return _FORBIDDEN.sub("", text).strip()


# ---------------------------------------------------------------------------- writing


def pairs_to_units(
    pairs: Iterable[SentencePair],
    *,
    source_lang: str = "zh-CN",
    target_lang: str = "en-US",
    document: str = "",
    creationid: str = "",
) -> Iterator[TranslationUnit]:
    """Aligner output as translation units, lazily, with provenance properties.

    The side each language takes is chosen by its primary subtag (``zh`` or ``en``), so
    ``source_lang="en-GB", target_lang="zh-CN"`` makes an English-source memory. ``document``
    names the source when a pair carries none. Empty properties are left out.
    """
    sides: dict[str, str] = {}
    for role, code in (("source", source_lang), ("target", target_lang)):
        primary = primary_lang(code)
        if primary not in ("zh", "en"):
            raise TMXError(f"{role} language {code!r} is neither Chinese (zh) nor English (en)")
        sides[role] = primary
    if sides["source"] == sides["target"]:
        raise TMXError(f"source and target languages are both {sides['source']!r}")
    return _units_from_pairs(
        pairs,
        sides["source"],
        sides["target"],
        normalize_lang(source_lang),
        normalize_lang(target_lang),
        document,
        creationid,
    )


def _units_from_pairs(
    pairs: Iterable[SentencePair],
    src_side: str,
    tgt_side: str,
    src_code: str,
    tgt_code: str,
    document: str,
    creationid: str,
) -> Iterator[TranslationUnit]:
    for pair in pairs:
        props = {
            "x-document": pair.document or document,
            "x-speaker": pair.speaker,
            "x-country": pair.country,
            "x-turn": "" if pair.turn is None else str(pair.turn),
            "x-score": f"{pair.score:.4f}",
        }
        yield TranslationUnit(
            source=getattr(pair, src_side),
            target=getattr(pair, tgt_side),
            source_lang=src_code,
            target_lang=tgt_code,
            props={k: v for k, v in props.items() if v},
            creationid=creationid,
        )


def tmx_date(when: datetime | None = None) -> str:
    """A moment in TMX form ``YYYYMMDDThhmmssZ`` (UTC); now when not given."""
    return (when or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _checked_lang(code: str, role: str) -> str:
    if not _LANG_CODE.fullmatch(code.strip()):
        raise TMXError(f"{role} language {code!r} is not a language code such as 'zh-CN'")
    return normalize_lang(code)


def write_tmx(
    path: str | os.PathLike[str],
    units: Iterable[TranslationUnit],
    *,
    source_lang: str = "zh-CN",
    target_lang: str = "en-US",
    creationid: str = CREATION_TOOL,
) -> int:
    """Write ``units`` as a TMX 1.4b file at ``path``; return how many ``tu`` were written.

    ``units`` may be any iterator (consumed once, never held in memory). Segments are cleaned
    with :func:`clean_text`; a unit left with an empty side is skipped and not counted. Every
    unit's languages must match ``source_lang``/``target_lang`` (compared after normalising
    case and ``_``); the header ``srclang`` is byte-identical to the source ``tuv`` code.
    ``creationid`` is used for units that carry none. The file appears only when complete.
    """
    src, tgt = _checked_pair(source_lang, target_lang)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    now = tmx_date()
    # O_EXCL with mode 0o666: a fresh name, and the permissions any new file gets (umask).
    tmp_name = target.parent / f".{target.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            # The last count it yields is the total.
            count = deque(_serialise(handle, units, src, tgt, now, creationid), maxlen=1)[0]
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        tmp_name.unlink(missing_ok=True)
        raise
    return count


def tmx_chunks(
    units: Iterable[TranslationUnit],
    *,
    source_lang: str = "zh-CN",
    target_lang: str = "en-US",
    creationid: str = CREATION_TOOL,
    size: int = 1 << 16,
) -> Iterator[bytes]:
    """What ``write_tmx`` writes, as byte chunks of about ``size`` made as the units come:
    a large memory is served from its first unit on, with no file first. A unit in other
    languages raises TMXError mid-stream (what was sent is then not a whole document)."""
    src, tgt = _checked_pair(source_lang, target_lang)
    sink = _Sink()
    for _ in _serialise(sink, units, src, tgt, tmx_date(), creationid):
        if sink.size >= size:
            yield sink.take()
    yield sink.take()


class _Sink:
    """A write-only byte buffer that hands over what it holds."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts, self.size = [], 0
        return data


def _checked_pair(source_lang: str, target_lang: str) -> tuple[str, str]:
    src = _checked_lang(source_lang, "source")
    tgt = _checked_lang(target_lang, "target")
    if src == tgt:
        raise TMXError(f"source and target languages are both {src!r}")
    return src, tgt


def _serialise(
    handle: BinaryIO | _Sink,
    units: Iterable[TranslationUnit],
    src: str,
    tgt: str,
    now: str,
    creationid: str,
) -> Iterator[int]:
    """Write the document to ``handle``, yielding the count of ``tu`` written after each unit."""
    header = etree.Element(
        "header",
        {
            "creationtool": CREATION_TOOL,
            "creationtoolversion": __version__,
            "segtype": "sentence",
            "o-tmf": CREATION_TOOL,
            "adminlang": "en-US",
            "srclang": src,
            "datatype": "plaintext",
            "creationdate": now,
        },
    )
    build = _TuBuilder(src, tgt, now, creationid)
    count = 0
    handle.write(b'<?xml version="1.0" encoding="UTF-8"?>\n')
    with etree.xmlfile(handle, encoding="UTF-8") as xf:
        xf.write_doctype(DOCTYPE)
        with xf.element("tmx", version="1.4"):
            xf.write("\n")
            xf.write(header, pretty_print=True)
            with xf.element("body"):
                xf.write("\n")
                for number, unit in enumerate(units, 1):
                    tu = build(unit, number)
                    if tu is not None:
                        xf.write(tu, pretty_print=True)
                        count += 1
                    yield count
            xf.write("\n")
    yield count


class _TuBuilder:
    """Makes the ``tu`` element for a unit, reusing one element tree per set of property types.

    Filling in texts and attributes of a kept tree is several times faster than building nine
    new elements per unit; the tree is serialised before it is filled again.
    """

    def __init__(self, src: str, tgt: str, now: str, creationid: str) -> None:
        self.src, self.tgt, self.now, self.creationid = src, tgt, now, creationid
        self.templates: dict[tuple[str, ...], tuple[etree._Element, list, list]] = {}

    def __call__(self, unit: TranslationUnit, number: int) -> etree._Element | None:
        src, tgt = self.src, self.tgt
        if (unit.source_lang != src and normalize_lang(unit.source_lang) != src) or (
            unit.target_lang != tgt and normalize_lang(unit.target_lang) != tgt
        ):
            raise TMXError(
                f"unit {number} is {unit.source_lang}→{unit.target_lang} "
                f"but the file is {src}→{tgt}"
            )
        source, target = clean_text(unit.source), clean_text(unit.target)
        if not source or not target:
            return None
        date = unit.creationdate or self.now
        if date is not self.now and not _TMX_DATE.fullmatch(date):
            raise TMXError(
                f"unit {number}: creationdate {date!r} is not in the form YYYYMMDDThhmmssZ"
            )
        props = {}
        for prop_type in sorted(unit.props, key=_prop_order):
            value = clean_text(str(unit.props[prop_type]))
            if value:
                props[prop_type] = value
        tu, prop_elements, segs = self._template(tuple(props))
        tu.set("creationdate", date)
        tu.set("creationid", clean_text(unit.creationid) or self.creationid)
        for element, value in zip(prop_elements, props.values(), strict=True):
            element.text = value
        segs[0].text, segs[1].text = source, target
        return tu

    def _template(self, prop_types: tuple[str, ...]) -> tuple[etree._Element, list, list]:
        template = self.templates.get(prop_types)
        if template is None:
            tu = etree.Element("tu", creationdate="", creationid="", creationtool=CREATION_TOOL)
            props = [etree.SubElement(tu, "prop", type=t) for t in prop_types]
            segs = [
                etree.SubElement(etree.SubElement(tu, "tuv", {XML_LANG: code}), "seg")
                for code in (self.src, self.tgt)
            ]
            template = (tu, props, segs)
            if len(self.templates) < 256:
                self.templates[prop_types] = template
        return template


def _prop_order(prop_type: str) -> tuple[int, str]:
    """Known provenance properties first, in PROP_TYPES order; others after, by name."""
    try:
        return (PROP_TYPES.index(prop_type), "")
    except ValueError:
        return (len(PROP_TYPES), prop_type)


# ---------------------------------------------------------------------------- reading


SKIPPED_TU = "a requested language missing or empty"


def read_tmx(
    source: str | os.PathLike[str] | BinaryIO,
    *,
    source_lang: str | None = None,
    target_lang: str | None = None,
    skipped: Counter[str] | None = None,
) -> Iterator[TranslationUnit]:
    """Stream the translation units of a TMX file (a path or a binary file object).

    ``skipped``, when given, counts the ``tu`` left out, by reason, as the log reports them.

    Languages are matched by exact code first, then by primary subtag, ignoring case and
    ``_`` vs ``-`` (``zh`` finds ``ZH_cn``). Without ``source_lang`` the header ``srclang``
    decides (the first ``tuv`` when it is ``*all*``); without ``target_lang`` the first
    ``tuv`` in another language. A ``tu`` lacking either language, or with an empty segment
    for one, is skipped (counted in a logged warning).
    Inline codes (``bpt``/``ept``/``ph``/``it``/``ut``) keep their content as plain text,
    ``hi``/``sub`` their text. Returned language codes are normalised (``zh-CN``).
    """
    if isinstance(source, str | os.PathLike):
        name = os.fspath(source)
    else:
        name = getattr(source, "name", None)
        name = name if isinstance(name, str) and name else "<stream>"
    opened = os.fspath(source) if isinstance(source, str | os.PathLike) else source
    if isinstance(opened, str) and not os.path.isfile(opened):
        if os.path.isdir(opened):
            raise IsADirectoryError(21, "Is a directory", opened)
        raise FileNotFoundError(2, "No such file", opened)
    events = etree.iterparse(
        opened,
        events=("end",),
        tag=("header", "tu"),
        resolve_entities=False,
        load_dtd=False,
        no_network=True,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    want_src = normalize_lang(source_lang) if source_lang else None
    want_tgt = normalize_lang(target_lang) if target_lang else None
    return _units(events, name, want_src, want_tgt, skipped)


def _units(
    events: etree.iterparse,
    name: str,
    want_src: str | None,
    want_tgt: str | None,
    counts: Counter[str] | None = None,
) -> Iterator[TranslationUnit]:
    checked = False
    read = skipped = 0
    try:
        for _, elem in events:
            if not checked:
                _check_document(elem, name)
                checked = True
            if elem.tag == "header":
                srclang = elem.get("srclang", "").strip()
                if want_src is None and srclang and srclang.lower() != "*all*":
                    want_src = normalize_lang(srclang)
            else:
                unit = _read_tu(elem, want_src, want_tgt, name)
                if unit is None:
                    skipped += 1
                    if counts is not None:
                        counts[SKIPPED_TU] += 1
                else:
                    read += 1
                    yield unit
            elem.clear(keep_tail=False)
            parent = elem.getparent()
            while elem.getprevious() is not None and parent is not None:
                del parent[0]
    except etree.XMLSyntaxError as exc:
        raise _syntax_error(exc, events, name) from None
    if not checked:
        _check_document(events.root, name)
    if skipped:
        log.warning(
            "%s: skipped %d of %d units: %s", name, skipped, read + skipped, SKIPPED_TU
        )


def _check_document(elem: etree._Element, name: str) -> None:
    tree = elem.getroottree()
    root = tree.getroot()
    if root.tag != "tmx":
        raise TMXError(f"{name}: not a TMX file (root element is <{root.tag}>, not <tmx>)")
    dtd = tree.docinfo.internalDTD
    if dtd is not None and next(dtd.iterentities(), None) is not None:
        raise TMXError(f"{name}: refused: the file declares XML entities (unsafe, not TMX)")


def _syntax_error(exc: etree.XMLSyntaxError, events: etree.iterparse, name: str) -> TMXError:
    errors = events.error_log.filter_from_errors()
    if errors:
        first = errors[0]
        line, column, message = first.line, first.column, first.message
    else:
        (line, column), message = exc.position, exc.msg or str(exc)
    message = _POSITION_SUFFIX.sub("", message.strip())
    if line <= 0:
        return TMXError(f"{name}: malformed TMX: {message} (empty or truncated file?)")
    return TMXError(f"{name}: malformed TMX at line {line}, column {column}: {message}")


def _read_tu(
    tu: etree._Element, want_src: str | None, want_tgt: str | None, name: str
) -> TranslationUnit | None:
    props: dict[str, str] = {}
    variants: list[tuple[str, str]] = []
    for child in tu:
        if child.tag == "prop":
            props[child.get("type", "")] = (child.text or "").strip()
        elif child.tag == "tuv":
            code = child.get(XML_LANG) or child.get("lang") or ""
            seg = child.find("seg")
            if seg is None:
                raise TMXError(f"{name}: line {child.sourceline}: <tuv> without <seg>")
            variants.append((normalize_lang(code), _flatten(seg, name)))
    src_i = _pick(variants, want_src, exclude=None)
    if src_i is None:
        return None
    tgt_i = _pick(variants, want_tgt, exclude=src_i)
    if tgt_i is None or not variants[src_i][1] or not variants[tgt_i][1]:
        return None
    return TranslationUnit(
        source=variants[src_i][1],
        target=variants[tgt_i][1],
        source_lang=variants[src_i][0],
        target_lang=variants[tgt_i][0],
        props=props,
        creationdate=tu.get("creationdate", ""),
        creationid=tu.get("creationid", ""),
    )


def _pick(variants: list[tuple[str, str]], want: str | None, exclude: int | None) -> int | None:
    """Index of the variant for ``want``: exact code, else same primary subtag, else None.

    With no wish: the first variant (source), or the first in another language (target).
    """
    candidates = [i for i in range(len(variants)) if i != exclude]
    if want is None:
        if exclude is None:
            return candidates[0] if candidates else None
        other = primary_lang(variants[exclude][0])
        different = [i for i in candidates if primary_lang(variants[i][0]) != other]
        return (different or candidates or [None])[0]
    for i in candidates:
        if variants[i][0].lower() == want.lower():
            return i
    primary = primary_lang(want)
    for i in candidates:
        if primary_lang(variants[i][0]) == primary:
            return i
    return None


def _flatten(seg: etree._Element, name: str) -> str:
    if len(seg) == 0:
        return (seg.text or "").strip()
    entity = next(seg.iter(etree.Entity), None)
    if entity is not None:
        raise TMXError(f"{name}: line {seg.sourceline}: undefined entity {entity.text}")
    return "".join(seg.itertext()).strip()
