"""Plain data that crosses module boundaries: documents, turns, beads, sentence pairs, TM units."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Document:
    """A text read from disk, reflowed into paragraphs."""

    paragraphs: list[str]
    lang: str  # "zh" or "en"
    source: str = ""  # file name or path it came from
    symbol: str = ""  # UN document symbol (e.g. "S/PV.8017") when known
    # Page furniture the reader dropped (headers, footers, job and page numbers), as printed:
    # every letter and digit read is either in ``paragraphs`` or here, exactly once.
    removed: list[str] = field(default_factory=list)
    encoding: str = ""  # the encoding a text file was decoded with; "" for .docx and .pdf


@dataclass
class Turn:
    """One speaker turn (or a procedural passage) of a meeting record."""

    kind: str  # "speech" or "procedural"
    paragraphs: list[str]
    speaker: str = ""  # as printed, e.g. "Mr. Rycroft", "主席"
    country: str = ""  # country or organisation as printed, "" when not stated
    language: str = ""  # language of delivery when stated ("English", "英语"), else ""
    is_president: bool = False
    heading: str = ""  # the heading as printed, left out of the text
    notes: list[str] = field(default_factory=list)  # language notes inside it, left out too


@dataclass
class Bead:
    """One alignment unit: zh sentence indices ↔ en sentence indices, in document order.

    Either side may be empty (an unmatched sentence). ``score`` is in [0, 1].
    """

    zh: tuple[int, ...]
    en: tuple[int, ...]
    score: float = 0.0


@dataclass
class SentencePair:
    """An aligned pair of (possibly joined) sentences with where it came from."""

    zh: str
    en: str
    score: float
    zh_indices: tuple[int, ...] = ()
    en_indices: tuple[int, ...] = ()
    document: str = ""
    turn: int | None = None
    speaker: str = ""
    country: str = ""
    language: str = ""
    # "procedural" for a cover, time, agenda or vote line and a language note ("(spoke in
    # Russian)"): text that recurs in every record, kept apart from speech in the memory.
    kind: str = ""


@dataclass
class Tag:
    """An XML element kept as data: inline markup of a segment (``bpt``, ``ept``, ``it``,
    ``ph``, ``hi``, ``ut``, ``sub``) or a ``note``, ``prop``, ``ude``, ``map`` around units.
    ``content`` holds its text and child elements in document order."""

    name: str
    attrs: dict[str, str] = field(default_factory=dict)
    content: list[str | Tag] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(c for c in self.content if isinstance(c, str))


Run = str | Tag  # a piece of a segment: text, or an inline tag


@dataclass
class Tuv:
    """What a TMX ``tuv`` holds besides its segment: its attributes as written (the language
    attribute included, ``xml:lang`` as ``{http://www.w3.org/XML/1998/namespace}lang``) and
    its notes and props in order."""

    attrs: dict[str, str] = field(default_factory=dict)
    extras: list[Tag] = field(default_factory=list)


@dataclass
class TranslationUnit:
    """One TMX translation unit: a source and a target segment plus properties.

    ``source``/``target`` are plain text. A unit read from a TMX also keeps everything the
    file said about it, so that writing it again gives the same ``tu``: its segments as runs
    (None: the plain text is the whole segment), the ``tu`` attributes besides creationdate
    and creationid, its notes and props in order (``props`` is the type → text view of the
    props), each ``tuv``, and whether the target ``tuv`` came first.
    """

    source: str
    target: str
    source_lang: str = "zh-CN"
    target_lang: str = "en-US"
    props: dict[str, str] = field(default_factory=dict)
    creationdate: str = ""  # TMX form YYYYMMDDThhmmssZ, "" = unknown
    creationid: str = ""
    source_runs: list[Run] | None = None
    target_runs: list[Run] | None = None
    attrs: dict[str, str] = field(default_factory=dict)
    extras: list[Tag] = field(default_factory=list)
    source_tuv: Tuv | None = None  # None: made by Concordia, not read from a TMX
    target_tuv: Tuv | None = None
    target_first: bool = False


@dataclass
class Unmatched:
    """A sentence that no bead pairs with anything, and where it stands."""

    lang: str  # "zh" or "en"
    index: int  # the sentence's index in its document
    text: str
    turn: int | None = None  # its turn in its own version, None in plain mode
    speaker: str = ""


@dataclass
class TurnLink:
    """A Chinese turn and an English turn paired (either None when unpaired), with the
    confidence of the pair and the block of turns whose sentences were aligned together."""

    zh: int | None
    en: int | None
    confidence: float = 0.0
    block: int = 0


@dataclass
class AlignmentResult:
    """What aligning one document pair gives: the pairs and what stayed unmatched."""

    pairs: list[SentencePair]  # beads with both sides non-empty, in document order
    unmatched_zh: list[str] = field(default_factory=list)
    unmatched_en: list[str] = field(default_factory=list)
    mode: str = "plain"  # "record" (speaker turns first) or "plain"
    warnings: list[str] = field(default_factory=list)
    unmatched: list[Unmatched] = field(default_factory=list)  # both sides, in document order
    turns: list[TurnLink] = field(default_factory=list)  # record mode: how the turns paired
    sentences: dict[str, int] = field(default_factory=dict)  # {"zh": n, "en": m}
    removed: dict[str, list[str]] = field(default_factory=dict)  # furniture the reader dropped
