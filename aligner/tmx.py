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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

from lxml import etree

from aligner import __version__
from aligner.errors import InputError
from aligner.markup import INLINE_TAGS, MarkupError, check_pairing, plain_text
from aligner.models import Run, SentencePair, Tag, TranslationUnit, Tuv
from aligner.xml_prolog import PROLOG_LIMIT, read_prolog

log = logging.getLogger(__name__)

CREATION_TOOL = "Concordia"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
DOCTYPE = '<!DOCTYPE tmx SYSTEM "tmx14.dtd">'
TMX_MEDIA = "application/x-tmx+xml"  # the media type TMX files are served as
# Provenance properties, in the order they are written before the tuvs.
PROP_TYPES = ("x-document", "x-speaker", "x-country", "x-turn", "x-score", "x-kind")

# Characters XML 1.0 does not allow (C0 controls but tab/LF/CR, surrogates, U+FFFE/U+FFFF).
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_LANG_CODE = re.compile(r"[A-Za-z]{1,8}(?:[-_][A-Za-z0-9]{1,8})*")
_TMX_DATE = re.compile(r"\d{8}T\d{6}Z")
_POSITION_SUFFIX = re.compile(r"(?:, line \d+, column \d+)+$")
# A note or prop longer than this is refused: it is not translation-memory data.
MAX_EXTRA_CHARS = 100_000
# tu attributes the writer takes from their own TranslationUnit fields.
_OWN_ATTRS = ("creationdate", "creationid")
ENTITIES_REFUSED = "the file declares XML entities or a DTD of its own (unsafe, not TMX)"


class TMXError(InputError):
    """A TMX file that cannot be read, or units that cannot be written as TMX."""


@dataclass
class TmxHeader:
    """A TMX header as written: its attributes, its notes, props and udes (in order) and the
    ``tmx`` element's version."""

    attrs: dict[str, str] = field(default_factory=dict)
    extras: list[Tag] = field(default_factory=list)
    version: str = "1.4"


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
            "x-kind": pair.kind,
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


_OFFSET_DATE = re.compile(
    r"(\d{4})-?(\d{2})-?(\d{2})T(\d{2}):?(\d{2}):?(\d{2})(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})"
)
_DATE_ATTRS = ("creationdate", "changedate", "lastusagedate")


def utc_tmx_date(value: str) -> str:
    """A TMX date in its form ``YYYYMMDDThhmmssZ``: one given with a time-zone offset
    (``20240105T101500+0200``, ``2024-01-05T10:15:00+02:00``) converted to UTC; anything
    else as it is (to be refused or dropped where it is used)."""
    if not value or _TMX_DATE.fullmatch(value):
        return value
    match = _OFFSET_DATE.fullmatch(value.strip())
    if not match:
        return value
    *parts, zone = match.groups()
    zone = "+00:00" if zone == "Z" else zone[:3] + ":" + zone[-2:]
    try:
        moment = datetime.fromisoformat("{}-{}-{}T{}:{}:{}".format(*parts) + zone)
    except ValueError:
        return value
    return tmx_date(moment)


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
    header: TmxHeader | None = None,
) -> int:
    """Write ``units`` as a TMX 1.4b file at ``path``; return how many ``tu`` were written.

    ``units`` may be any iterator (consumed once, never held in memory). Every unit's
    languages must be ``source_lang`` and ``target_lang`` by primary subtag, in either
    direction (variants such as ``en-GB`` are written as they are). A unit read from a TMX is
    written back as it was read (attributes, notes, props, inline markup; see
    :class:`~aligner.models.TranslationUnit`); a unit made by Concordia gets a
    ``creationdate`` (now, when it has none), ``creationid`` (``creationid`` when it has none)
    and ``creationtool``, and segments cleaned with :func:`clean_text`; a unit left with an
    empty side is skipped and not counted. ``header``: the header to write (one read with
    the units), else Concordia's own with ``srclang`` byte-identical to ``source_lang``
    normalised. The file appears only when complete.
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
            steps = _serialise(handle, units, src, tgt, now, creationid, header)
            count = deque(steps, maxlen=1)[0]
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
    header: TmxHeader | None = None,
    size: int = 1 << 16,
) -> Iterator[bytes]:
    """What ``write_tmx`` writes, as byte chunks of about ``size`` made as the units come:
    a large memory is served from its first unit on, with no file first. A unit in other
    languages raises TMXError mid-stream (what was sent is then not a whole document)."""
    src, tgt = _checked_pair(source_lang, target_lang)
    sink = _Sink()
    for _ in _serialise(sink, units, src, tgt, tmx_date(), creationid, header):
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
    if primary_lang(src) == primary_lang(tgt):
        raise TMXError(f"source and target languages are both {primary_lang(src)!r}")
    return src, tgt


def concordia_header(src: str, now: str) -> TmxHeader:
    """The header Concordia writes when no header of another tool is kept."""
    return TmxHeader(
        {
            "creationtool": CREATION_TOOL,
            "creationtoolversion": __version__,
            "segtype": "sentence",
            "o-tmf": CREATION_TOOL,
            "adminlang": "en-US",
            "srclang": src,
            "datatype": "plaintext",
            "creationdate": now,
        }
    )


def _serialise(
    handle: BinaryIO | _Sink,
    units: Iterable[TranslationUnit],
    src: str,
    tgt: str,
    now: str,
    creationid: str,
    header: TmxHeader | None,
) -> Iterator[int]:
    """Write the document to ``handle``, yielding the count of ``tu`` written after each unit."""
    header = header or concordia_header(src, now)
    head = etree.Element("header", header.attrs)
    for extra in header.extras:
        head.append(_element(extra))
    build = _TuBuilder(src, tgt, now, creationid)
    count = 0
    handle.write(b'<?xml version="1.0" encoding="UTF-8"?>\n')
    with etree.xmlfile(handle, encoding="UTF-8") as xf:
        xf.write_doctype(DOCTYPE)
        with xf.element("tmx", version=header.version or "1.4"):
            xf.write("\n")
            xf.write(head, pretty_print=True)
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


def _element(tag: Tag) -> etree._Element:
    """The XML element of a kept tag, its text and children in order."""
    elem = etree.Element(tag.name, tag.attrs)
    _fill(elem, tag.content)
    return elem


def _fill(elem: etree._Element, content: list[Run]) -> None:
    last = None
    for item in content:
        if isinstance(item, str):
            text = _FORBIDDEN.sub("", item)
            if last is None:
                elem.text = (elem.text or "") + text
            else:
                last.tail = (last.tail or "") + text
        else:
            last = _element(item)
            elem.append(last)


class _TuBuilder:
    """Makes the ``tu`` element for a unit.

    Units made by Concordia reuse one element tree per set of property types and languages:
    filling in texts and attributes of a kept tree is several times faster than building nine
    new elements per unit; the tree is serialised before it is filled again. Units read from
    a TMX are built as they were read.
    """

    def __init__(self, src: str, tgt: str, now: str, creationid: str) -> None:
        self.src, self.tgt, self.now, self.creationid = src, tgt, now, creationid
        self.langs = {primary_lang(src), primary_lang(tgt)}
        self.templates: dict[tuple[str, ...], tuple[etree._Element, list, list]] = {}

    def __call__(self, unit: TranslationUnit, number: int) -> etree._Element | None:
        src, tgt = self.src, self.tgt
        if (unit.source_lang != src or unit.target_lang != tgt) and {
            primary_lang(unit.source_lang),
            primary_lang(unit.target_lang),
        } != self.langs:
            raise TMXError(
                f"unit {number} is {unit.source_lang}→{unit.target_lang} "
                f"but the file is {src}→{tgt}"
            )
        if unit.source_tuv is not None:
            return self._kept(unit, number)
        source, target = clean_text(unit.source), clean_text(unit.target)
        if not source or not target:
            return None
        date = self._date(unit, number) or self.now
        props = {}
        for prop_type in sorted(unit.props, key=_prop_order):
            value = clean_text(str(unit.props[prop_type]))
            if value:
                props[prop_type] = value
        langs = (normalize_lang(unit.source_lang), normalize_lang(unit.target_lang))
        tu, prop_elements, segs = self._template(langs, tuple(props))
        tu.set("creationdate", date)
        tu.set("creationid", clean_text(unit.creationid) or self.creationid)
        for element, value in zip(prop_elements, props.values(), strict=True):
            element.text = value
        segs[0].text, segs[1].text = source, target
        return tu

    @staticmethod
    def _date(unit: TranslationUnit, number: int) -> str:
        date = unit.creationdate
        if date and not _TMX_DATE.fullmatch(date):
            raise TMXError(
                f"unit {number}: creationdate {date!r} is not in the form YYYYMMDDThhmmssZ"
            )
        return date

    def _kept(self, unit: TranslationUnit, number: int) -> etree._Element | None:
        """A unit read from a TMX, written as it was read (with its edits)."""
        if not unit.source.strip() or not unit.target.strip():
            return None
        attrs = {k: v for k, v in unit.attrs.items() if k not in _OWN_ATTRS}
        date = self._date(unit, number)
        if date:
            attrs["creationdate"] = date
        if unit.creationid:
            attrs["creationid"] = unit.creationid
        tu = etree.Element("tu", attrs)
        for extra in _extras_with_props(unit.extras, unit.props):
            tu.append(_element(extra))
        sides = [
            (unit.source_lang, unit.source_tuv, unit.source_runs, unit.source),
            (unit.target_lang, unit.target_tuv, unit.target_runs, unit.target),
        ]
        if unit.target_first:
            sides.reverse()
        for lang, tuv, runs, text in sides:
            tuv = tuv or Tuv()
            tuv_attrs = dict(tuv.attrs)
            if XML_LANG not in tuv_attrs and "lang" not in tuv_attrs:
                tuv_attrs[XML_LANG] = lang
            elem = etree.SubElement(tu, "tuv", tuv_attrs)
            for extra in tuv.extras:
                elem.append(_element(extra))
            seg = etree.SubElement(elem, "seg")
            _fill(seg, runs if runs is not None else [clean_text(text)])
        return tu

    def _template(
        self, langs: tuple[str, str], prop_types: tuple[str, ...]
    ) -> tuple[etree._Element, list, list]:
        key = (*langs, *prop_types)
        template = self.templates.get(key)
        if template is None:
            tu = etree.Element("tu", creationdate="", creationid="", creationtool=CREATION_TOOL)
            props = [etree.SubElement(tu, "prop", type=t) for t in prop_types]
            segs = [
                etree.SubElement(etree.SubElement(tu, "tuv", {XML_LANG: code}), "seg")
                for code in langs
            ]
            template = (tu, props, segs)
            if len(self.templates) < 256:
                self.templates[key] = template
        return template


def _extras_with_props(extras: list[Tag], props: dict[str, str]) -> list[Tag]:
    """The unit's notes and props in their order, each type's last prop carrying its value
    in ``props`` (as reading takes the last; edited ones changed, removed types gone), props
    new to the unit after them."""
    last = {e.attrs.get("type", ""): i for i, e in enumerate(extras) if e.name == "prop"}
    out = []
    for i, extra in enumerate(extras):
        if extra.name == "prop":
            kind = extra.attrs.get("type", "")
            if kind not in props:
                continue
            if last[kind] == i and extra.text.strip() != props[kind]:
                extra = Tag("prop", extra.attrs, [props[kind]])
        out.append(extra)
    for kind in sorted(props, key=_prop_order):
        if kind not in last and props[kind]:
            out.append(Tag("prop", {"type": kind}, [props[kind]]))
    return out


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
    on_header: Callable[[TmxHeader], None] | None = None,
    only_langs: Iterable[str] | None = None,
) -> Iterator[TranslationUnit]:
    """Stream the translation units of a TMX file (a path or a binary file object).

    ``skipped``, when given, counts the ``tu`` left out, by reason, as the log reports them.

    Languages are matched by exact code first, then by primary subtag, ignoring case and
    ``_`` vs ``-`` (``zh`` finds ``ZH_cn``). Without ``source_lang`` the header ``srclang``
    decides (the first ``tuv`` when it is ``*all*``); without ``target_lang`` the first
    ``tuv`` in another language. A ``tu`` lacking either language, or with an empty segment
    for one, is skipped (counted in a logged warning). ``only_langs`` (primary subtags):
    a ``tuv`` in any other language is an error.

    Everything the file says about a unit is kept (see ``TranslationUnit``): inline
    elements as runs of the segment (``source``/``target`` are their plain text, stripped),
    notes and props in order, ``tu`` and ``tuv`` attributes. ``bpt``/``ept`` that do not
    pair, and notes or props over ``MAX_EXTRA_CHARS``, are errors. ``on_header`` is called
    with the header before the first unit. Returned language codes are normalised
    (``zh-CN``); the attributes keep them as written.
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
    want_src = normalize_lang(source_lang) if source_lang else None
    want_tgt = normalize_lang(target_lang) if target_lang else None
    only = frozenset(primary_lang(code) for code in only_langs) if only_langs else None
    return _read(opened, name, want_src, want_tgt, skipped, on_header, only)


def _read(
    opened: str | BinaryIO,
    name: str,
    want_src: str | None,
    want_tgt: str | None,
    counts: Counter[str] | None,
    on_header: Callable[[TmxHeader], None] | None,
    only: frozenset[str] | None,
) -> Iterator[TranslationUnit]:
    """The units, once the prolog is known to declare no DTD of its own."""
    if isinstance(opened, str):
        with open(opened, "rb") as handle:
            _check_prolog(handle.read, name)
    else:
        opened = _Replayed(_check_prolog(opened.read, name), opened)
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
    yield from _units(events, name, want_src, want_tgt, counts, on_header, only)


class _Replayed:
    """A binary stream whose first bytes were already read: they come again first."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head, self._rest = head, rest

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            return self._rest.read(size)
        if size < 0:
            out, self._head = self._head + self._rest.read(), b""
        else:
            out, self._head = self._head[:size], self._head[size:]
        return out


def _check_prolog(read: Callable[[int], bytes], name: str) -> bytes:
    """Refuse a DOCTYPE with an internal subset, by our own scan (the same refusal under
    every libxml2); return the bytes read."""
    head, prolog = read_prolog(read)
    if prolog == "own_dtd":
        raise TMXError(f"{name}: refused: {ENTITIES_REFUSED}")
    if prolog == "too_long":
        raise TMXError(
            f"{name}: refused: over {PROLOG_LIMIT:,} bytes before the root element (not TMX)"
        )
    return head


_CHECK_BLOCK = 1 << 20


class _NoTree:
    """A parser target that keeps nothing: the check only needs libxml2's verdict."""

    def close(self) -> None:
        return None


def check_tmx(path: str | os.PathLike[str], name: str | None = None) -> None:
    """Check, before a TMX is accepted for import, what a reader would refuse on reading it:
    its root is ``<tmx>``, it declares no DTD of its own (entities: billion laughs, XXE), and it is
    well-formed XML to its last byte. Raises ``TMXError`` naming ``name`` and the line.

    Streams the file through libxml2 without building a tree (constant memory): no DTD
    loaded, no entities resolved, no network, libxml2's own size limits (no ``huge_tree``).
    """
    name = name or os.fspath(path)
    with open(path, "rb") as handle:
        _check_prolog(handle.read, name)
        handle.seek(0)
        events = etree.iterparse(
            handle,
            events=("start",),
            resolve_entities=False,
            load_dtd=False,
            no_network=True,
            huge_tree=False,
        )
        try:
            for _, elem in events:  # the prolog and the root: the DTD is known by then
                _check_document(elem, name)
                break
        except etree.XMLSyntaxError as exc:
            raise _syntax_error(exc, events, name) from None
        handle.seek(0)
        parser = etree.XMLParser(
            target=_NoTree(),
            resolve_entities=False,
            load_dtd=False,
            no_network=True,
            huge_tree=False,
        )
        try:
            for block in iter(lambda: handle.read(_CHECK_BLOCK), b""):
                parser.feed(block)
            parser.close()
        except etree.XMLSyntaxError as exc:
            raise _syntax_error(exc, parser, name) from None


def _units(
    events: etree.iterparse,
    name: str,
    want_src: str | None,
    want_tgt: str | None,
    counts: Counter[str] | None,
    on_header: Callable[[TmxHeader], None] | None,
    only: frozenset[str] | None,
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
                if on_header is not None:
                    root = elem.getparent()
                    version = root.get("version", "") if root is not None else ""
                    on_header(
                        TmxHeader(dict(elem.attrib), _extras(elem, name), version or "1.4")
                    )
            else:
                unit = _read_tu(elem, want_src, want_tgt, name, only)
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
        raise TMXError(f"{name}: refused: {ENTITIES_REFUSED}")


def _syntax_error(
    exc: etree.XMLSyntaxError, events: etree.iterparse | etree.XMLParser, name: str
) -> TMXError:
    errors = events.error_log.filter_from_errors()
    if errors:
        first = errors[0]
        line, column, message = first.line, first.column, first.message
    else:
        (line, column), message = exc.position, exc.msg or str(exc)
    message = _POSITION_SUFFIX.sub("", message.strip())
    if "Text node too long" in message:  # libxml2's limit without huge_tree
        return TMXError(
            f"{name}: line {line}: a text of over 10,000,000 bytes (a note, prop or segment "
            "that large is not translation-memory data); refused"
        )
    if line <= 0:
        return TMXError(f"{name}: malformed TMX: {message} (empty or truncated file?)")
    return TMXError(f"{name}: malformed TMX at line {line}, column {column}: {message}")


def _extras(elem: etree._Element, name: str) -> list[Tag]:
    """The notes, props and udes of a header, tu or tuv, in order, kept as tags."""
    out = []
    for child in elem:
        if child.tag in ("note", "prop", "ude"):
            tag = _tag(child, name)
            if len(tag.text) > MAX_EXTRA_CHARS:
                raise TMXError(
                    f"{name}: line {child.sourceline}: a <{child.tag}> of {len(tag.text):,} "
                    f"characters; the limit is {MAX_EXTRA_CHARS:,}"
                )
            out.append(tag)
    return out


def _tag(elem: etree._Element, name: str) -> Tag:
    return Tag(elem.tag, dict(elem.attrib), _content(elem, name))


def _content(elem: etree._Element, name: str) -> list[Run]:
    """An element's text and children in order, as runs."""
    out: list[Run] = [elem.text] if elem.text else []
    for child in elem:
        if not isinstance(child.tag, str):  # an undefined entity reference
            raise TMXError(f"{name}: line {elem.sourceline}: undefined entity {child.text}")
        out.append(_tag(child, name))
        if child.tail:
            out.append(child.tail)
    return out


def _seg_runs(seg: etree._Element, name: str) -> list[Run]:
    runs = _content(seg, name)
    for tag in _all_tags(runs):
        if tag.name not in INLINE_TAGS:
            raise TMXError(f"{name}: line {seg.sourceline}: <{tag.name}> inside a <seg>")
    try:
        check_pairing(runs)
    except MarkupError as exc:
        raise TMXError(f"{name}: line {seg.sourceline}: inline tags do not pair: {exc}") from None
    return runs


def _all_tags(runs: list[Run]) -> Iterator[Tag]:
    for run in runs:
        if isinstance(run, Tag):
            yield run
            yield from _all_tags(run.content)


def _read_tu(
    tu: etree._Element,
    want_src: str | None,
    want_tgt: str | None,
    name: str,
    only: frozenset[str] | None,
) -> TranslationUnit | None:
    props: dict[str, str] = {}
    variants: list[tuple[str, str, list[Run] | None, Tuv]] = []
    for child in tu:
        if child.tag == "prop":
            props[child.get("type", "")] = (child.text or "").strip()
        elif child.tag == "tuv":
            code = child.get(XML_LANG) or child.get("lang") or ""
            if only is not None and primary_lang(code) not in only:
                raise TMXError(
                    f"{name}: line {child.sourceline}: a <tuv> in {code or 'no language'!r}; "
                    f"this memory holds {' and '.join(sorted(only))} only"
                )
            seg = child.find("seg")
            if seg is None:
                raise TMXError(f"{name}: line {child.sourceline}: <tuv> without <seg>")
            if len(seg) == 0:
                text = seg.text or ""
                runs = None if text == text.strip() else [text]
                plain = text.strip()
            else:
                runs = _seg_runs(seg, name)
                plain = plain_text(runs).strip()
            tuv = Tuv(dict(child.attrib), _extras(child, name))
            variants.append((normalize_lang(code), plain, runs, tuv))
    langs = [(v[0], v[1]) for v in variants]
    src_i = _pick(langs, want_src, exclude=None)
    if src_i is None:
        return None
    tgt_i = _pick(langs, want_tgt, exclude=src_i)
    if tgt_i is None or not variants[src_i][1] or not variants[tgt_i][1]:
        return None
    src, tgt = variants[src_i], variants[tgt_i]
    attrs = dict(tu.attrib)
    for date_attr in _DATE_ATTRS:
        if date_attr in attrs:
            attrs[date_attr] = utc_tmx_date(attrs[date_attr])
    return TranslationUnit(
        source=src[1],
        target=tgt[1],
        source_lang=src[0],
        target_lang=tgt[0],
        props=props,
        creationdate=attrs.pop("creationdate", ""),
        creationid=attrs.pop("creationid", ""),
        source_runs=src[2],
        target_runs=tgt[2],
        attrs=attrs,
        extras=_extras(tu, name),
        source_tuv=src[3],
        target_tuv=tgt[3],
        target_first=tgt_i < src_i,
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
