"""Review of an alignment before it enters the memory: the state, its store table, the edits.

A review holds a whole alignment: every sentence of both versions, inside beads kept in
document order, grouped in sections (a pair of speaker turns, or the whole text in plain mode).
Nothing is lost: a sentence the aligner left unmatched is a bead with one empty side.

Kept in the store's review table (:class:`service.memory.store.ReviewTable`, beside the units):

- ``review``: one row per alignment under review; ``state`` is the JSON of its sections and
  beads as of ``snapshot_version``, ``version`` goes up by one with every change. A change
  names the version it was made on, and is refused (409 ``review_changed``) when the row has
  moved on since: two tabs or two people never overwrite each other silently.
- ``review_journal``: the splices since the snapshot, one per version. The current state is
  the snapshot with them applied; every ``SNAPSHOT_EVERY`` changes the snapshot is rewritten
  and the journal emptied. A change then writes a few beads, not the whole alignment
  (300 KB of JSON at 1,000 pairs, most of a change's time when it was rewritten each time).
- ``review_edit``: the changes in order, as a splice of the bead list (where, the beads taken
  out, the beads put in), so that undo and redo are the inverse splice and the history says
  who changed what when. A splice holds only the beads that changed (``confirm_turn`` on a
  turn with nothing pending logs nothing), and only the last ``HISTORY_KEPT`` edits of a
  review are kept: undo goes back that far.

A review belongs to the key that opened it (``owner``, the key's name): only that key, or an
``admin`` key, may change, finish or delete it; any reader may read it. The reviewer a
finished review names is the finishing key's name.

Every operation is one transaction of the table: it is applied whole or not at all.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aligner.align.segment import join_segments, split_sentences, split_units
from aligner.models import AlignmentResult, Document, TranslationUnit
from aligner.record.turns import parse_turns
from service.errors import ServiceError
from service.memory.store import ReviewEdit, ReviewNotFound, ReviewRow, ReviewTable

STATUSES = ("pending", "confirmed", "rejected")
SIDES = ("zh", "en")
MAX_BEADS = 20_000  # a review larger than this is refused when it is opened
MAX_NAME = 200
SNAPSHOT_EVERY = 50  # changes between two snapshots of a review's whole state
HISTORY_KEPT = 500  # edits of a review kept for undo (older ones are dropped)

def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Section:
    """A pair of speaker turns (either may be missing), or the whole text in plain mode."""

    zh_speaker: str = ""
    en_speaker: str = ""
    country: str = ""
    language: str = ""
    turn: int | None = None  # the Chinese turn's number, as the aligner's x-turn


@dataclass
class Bead:
    """Sentences of each side that go together; a side may be empty (unpaired)."""

    id: int
    section: int
    zh: list[str] = field(default_factory=list)
    en: list[str] = field(default_factory=list)
    score: float | None = None  # the aligner's calibrated score; None once edited
    status: str = "pending"

    @property
    def paired(self) -> bool:
        return bool(self.zh) and bool(self.en)

    def text(self, side: str) -> str:
        return join_segments(getattr(self, side), side)


@dataclass
class Review:
    """The state a review page shows: sections and beads in order."""

    sections: list[Section]
    beads: list[Bead]
    next_id: int = 0

    def to_json(self) -> dict:
        """Plain data (sharing the beads' lists: serialise it, do not change it)."""
        return {
            "sections": [vars(s) for s in self.sections],
            "beads": [vars(b) for b in self.beads],
            "next_id": self.next_id,
        }

    @classmethod
    def from_json(cls, data: dict) -> Review:
        return cls(
            sections=[Section(**s) for s in data["sections"]],
            beads=[Bead(**b) for b in data["beads"]],
            next_id=data["next_id"],
        )

    def new_bead(self, section: int, zh: list[str], en: list[str], **kw) -> Bead:
        bead = Bead(self.next_id, section, list(zh), list(en), **kw)
        self.next_id += 1
        return bead

    def index(self, bead_id: int) -> int:
        for i, bead in enumerate(self.beads):
            if bead.id == bead_id:
                return i
        raise ServiceError(404, "bead_not_found", f"no pair {bead_id} in this review")


# -- building a review from an alignment ------------------------------------------------------


def _sentences(doc: Document, lang: str, record: bool):
    """Sentences of ``doc`` per turn (as the pipeline cuts them) and the turns."""
    if record:
        turns = parse_turns(doc)
        return [[s for p in t.paragraphs for s in split_units(p, lang)] for t in turns], turns
    return [[s for p in doc.paragraphs for s in split_units(p, lang)]], [None]


def _flat(per_turn: list[list[str]]) -> tuple[list[str], list[int]]:
    flat, turn_of = [], []
    for t, sents in enumerate(per_turn):
        flat += sents
        turn_of += [t] * len(sents)
    return flat, turn_of


def review_from_alignment(zh: Document, en: Document, result: AlignmentResult) -> Review:
    """Every sentence of both documents in beads: the aligner's pairs, and each sentence it
    left unmatched as a one-sided bead at its place in the text."""
    record = result.mode == "record"
    zh_per, zh_turns = _sentences(zh, "zh", record)
    en_per, en_turns = _sentences(en, "en", record)
    zh_flat, zh_turn_of = _flat(zh_per)
    en_flat, en_turn_of = _flat(en_per)
    for pair in result.pairs:
        if join_segments([zh_flat[i] for i in pair.zh_indices], "zh") != pair.zh:
            raise ServiceError(500, "review_mismatch", "the alignment's sentences differ")
    partner_of_zh: dict[int, int] = {}
    partner_of_en: dict[int, int] = {}
    for pair in result.pairs:
        zt, et = zh_turn_of[pair.zh_indices[0]], en_turn_of[pair.en_indices[0]]
        partner_of_zh.setdefault(zt, et)
        partner_of_en.setdefault(et, zt)

    review = Review(sections=[], beads=[])
    keys: dict[tuple, int] = {}

    def section(zt: int | None, et: int | None) -> int:
        key = (zt, et)
        if key not in keys:
            ztu = zh_turns[zt] if zt is not None else None
            etu = en_turns[et] if et is not None else None
            keys[key] = len(review.sections)
            review.sections.append(
                Section(
                    zh_speaker=_heading(ztu, "zh"),
                    en_speaker=_heading(etu, "en"),
                    country=(etu.country if etu else "") or (ztu.country if ztu else ""),
                    language=(etu.language if etu else "") or (ztu.language if ztu else ""),
                    turn=zt if record else None,
                )
            )
        return keys[key]

    def lone(side: str, i: int) -> None:
        if side == "zh":
            zt = zh_turn_of[i]
            sec = section(zt, partner_of_zh.get(zt))
            review.beads.append(review.new_bead(sec, [zh_flat[i]], []))
        else:
            et = en_turn_of[i]
            sec = section(partner_of_en.get(et), et)
            review.beads.append(review.new_bead(sec, [], [en_flat[i]]))

    zi = ei = 0
    for pair in result.pairs:
        while zi < pair.zh_indices[0]:
            lone("zh", zi)
            zi += 1
        while ei < pair.en_indices[0]:
            lone("en", ei)
            ei += 1
        sec = section(zh_turn_of[pair.zh_indices[0]], en_turn_of[pair.en_indices[0]])
        review.beads.append(
            review.new_bead(
                sec,
                [zh_flat[i] for i in pair.zh_indices],
                [en_flat[j] for j in pair.en_indices],
                score=round(pair.score, 4),
            )
        )
        zi, ei = max(zi, pair.zh_indices[-1] + 1), max(ei, pair.en_indices[-1] + 1)
    for i in range(zi, len(zh_flat)):
        lone("zh", i)
    for j in range(ei, len(en_flat)):
        lone("en", j)
    if len(review.beads) > MAX_BEADS:
        raise ServiceError(
            413, "review_too_large", f"{len(review.beads)} pairs; a review holds {MAX_BEADS}"
        )
    return review


def _heading(turn, lang: str) -> str:
    """The speaker as the record prints it, "" for a procedural passage or no turn."""
    if turn is None or turn.kind != "speech":
        return ""
    if not turn.country:
        return turn.speaker
    if lang == "zh":
        return f"{turn.speaker}（{turn.country}）"
    return f"{turn.speaker} ({turn.country})"


# -- operations: each one a splice of the bead list ------------------------------------------


@dataclass
class Splice:
    """Replace ``removed`` (the beads at ``start``) with ``added``."""

    start: int
    removed: list[Bead]
    added: list[Bead]

    def to_json(self) -> dict:
        return {
            "start": self.start,
            "removed": len(self.removed),
            "beads": [vars(b) for b in self.added],
        }


def _side(value: str) -> str:
    if value not in SIDES:
        raise ServiceError(422, "invalid_request", f"side must be zh or en, not {value!r}")
    return value


def _same_section(a: Bead, b: Bead, what: str) -> None:
    if a.section != b.section:
        raise ServiceError(409, "not_same_turn", f"{what}: the pairs are in different turns")


def _neighbour(review: Review, i: int, step: int, what: str) -> int:
    j = i + step
    if not 0 <= j < len(review.beads):
        raise ServiceError(409, "no_neighbour", f"{what}: there is no pair there")
    _same_section(review.beads[i], review.beads[j], what)
    return j


def _copy(review: Review, bead: Bead, **changes) -> Bead:
    """A new bead with ``bead``'s sentences and section, changed; a new id each time."""
    data = {"zh": bead.zh, "en": bead.en, "score": None, "status": "pending"} | changes
    return review.new_bead(bead.section, data.pop("zh"), data.pop("en"), **data)


def _split_side(sentences: list[str], side: str, at: int | None) -> tuple[list[str], list[str]]:
    """Cut a side at character ``at`` of its joined text (a sentence end or anywhere); no
    ``at`` keeps the whole side in the first half."""
    if at is None:
        return list(sentences), []
    sep = 0 if side == "zh" else 1
    total = sum(len(s) for s in sentences) + sep * max(len(sentences) - 1, 0)
    if not isinstance(at, int) or not 0 <= at <= total:
        raise ServiceError(422, "invalid_split", "the split point is outside the text")
    first: list[str] = []
    pos = 0
    for k, sent in enumerate(sentences):
        if at <= pos + len(sent):
            head, tail = sent[: at - pos].strip(), sent[at - pos :].strip()
            first += [head] if head else []
            return first, ([tail] if tail else []) + sentences[k + 1 :]
        first.append(sent)
        pos += len(sent) + sep
    return first, []


def plan(review: Review, op: dict, max_chars: int, *, min_score: float) -> Splice:
    """The splice that operation ``op`` makes on ``review`` (not applied yet). Confirming a
    turn confirms its sure pairs (``min_score`` or more, or made by the reviewer); the
    doubtful ones stay pending for a decision of their own."""
    kind = op.get("op")
    beads = review.beads
    if kind == "confirm_turn":
        sec = op.get("section")
        idx = [i for i, b in enumerate(beads) if b.section == sec]
        if not idx:
            raise ServiceError(404, "section_not_found", f"no turn {sec} in this review")
        start, end = idx[0], idx[-1] + 1
        old = beads[start:end]
        new = [
            _copy(review, b, score=b.score, status="confirmed")
            if b.paired and b.status == "pending" and (b.score is None or b.score >= min_score)
            else b
            for b in old
        ]
        return Splice(start, old, new)
    if kind == "import":  # a reviewed spreadsheet: ``build`` makes the new beads
        return Splice(0, list(beads), op["build"](review))
    i = review.index(int(op.get("bead", -1)))
    bead = beads[i]
    if kind == "merge":
        j = _neighbour(review, i, 1, "merge")
        nxt = beads[j]
        return Splice(i, [bead, nxt], [_copy(review, bead, zh=bead.zh + nxt.zh,
                                                   en=bead.en + nxt.en)])
    if kind == "split":
        zh1, zh2 = _split_side(bead.zh, "zh", op.get("zh"))
        en1, en2 = _split_side(bead.en, "en", op.get("en"))
        if not (zh1 or en1) or not (zh2 or en2):
            raise ServiceError(422, "invalid_split", "a split must leave text in both pairs")
        return Splice(i, [bead], [_copy(review, bead, zh=zh1, en=en1),
                                  _copy(review, bead, zh=zh2, en=en2)])
    if kind == "move":
        side = _side(op.get("side", ""))
        step = {"prev": -1, "next": 1}.get(op.get("to", ""))
        if step is None:
            raise ServiceError(422, "invalid_request", "to must be prev or next")
        sents = getattr(bead, side)
        if not sents:
            raise ServiceError(409, "nothing_to_move", f"this pair has no {side} sentence")
        j = _neighbour(review, i, step, "move")
        other = beads[j]
        if step < 0:
            moved, rest = sents[0], sents[1:]
            target = _copy(review, other, **{side: getattr(other, side) + [moved]})
        else:
            moved, rest = sents[-1], sents[:-1]
            target = _copy(review, other, **{side: [moved] + getattr(other, side)})
        source = _copy(review, bead, **{side: rest})
        kept = [source] if (source.zh or source.en) else []
        pair = [target] + kept if step < 0 else kept + [target]
        return Splice(min(i, j), [beads[min(i, j)], beads[max(i, j)]], pair)
    if kind == "pair":
        j = review.index(int(op.get("with", -1)))
        a, b = (bead, beads[j]) if i < j else (beads[j], bead)
        lo, hi = min(i, j), max(i, j)
        _same_section(a, b, "pair")
        if a.paired or b.paired or (bool(a.zh) == bool(b.zh)):
            raise ServiceError(
                409, "not_unpaired", "pair: choose one unpaired Chinese and one unpaired English"
            )
        joined = _copy(review, a, zh=a.zh + b.zh, en=a.en + b.en)
        return Splice(lo, beads[lo : hi + 1], [joined] + beads[lo + 1 : hi])
    if kind == "unpair":
        if not bead.paired:
            raise ServiceError(409, "not_paired", "unpair: this sentence is already unpaired")
        return Splice(i, [bead], [_copy(review, bead, en=[]), _copy(review, bead, zh=[])])
    if kind == "edit":
        side = _side(op.get("side", ""))
        text = op.get("text")
        if not isinstance(text, str):
            raise ServiceError(422, "invalid_request", "edit: text must be a string")
        if len(text) > max_chars:
            raise ServiceError(
                422,
                "segment_too_long",
                f"the text has {len(text):,} characters; a segment holds at most {max_chars:,}. "
                "Nothing was saved.",
            )
        sents = split_sentences(text.strip(), side) if text.strip() else []
        if not sents and not getattr(bead, "en" if side == "zh" else "zh"):
            raise ServiceError(422, "empty_pair", "edit: a pair cannot lose both sides")
        return Splice(i, [bead], [_copy(review, bead, **{side: sents})])
    if kind == "status":
        status = op.get("status")
        if status not in STATUSES:
            raise ServiceError(422, "invalid_request", f"status must be one of {STATUSES}")
        if status == "confirmed" and not bead.paired:
            raise ServiceError(409, "not_paired", "only a pair with both sides can be confirmed")
        return Splice(i, [bead], [_copy(review, bead, score=bead.score, status=status)])
    raise ServiceError(422, "invalid_request", f"unknown operation {kind!r}")


def trimmed(splice: Splice) -> Splice:
    """The splice without the beads it leaves as they are at either end (the same objects:
    an operation makes new beads for what it changes)."""
    removed, added, start = splice.removed, splice.added, splice.start
    head = 0
    while head < min(len(removed), len(added)) and removed[head] is added[head]:
        head += 1
    tail = 0
    while (tail < min(len(removed), len(added)) - head
           and removed[-1 - tail] is added[-1 - tail]):
        tail += 1
    return Splice(start + head, removed[head : len(removed) - tail],
                  added[head : len(added) - tail])


def apply(review: Review, splice: Splice) -> None:
    review.beads[splice.start : splice.start + len(splice.removed)] = splice.added


# -- the store ---------------------------------------------------------------------------


class Conflict(ServiceError):
    def __init__(self, sent: int, current: int):
        super().__init__(
            409,
            "review_changed",
            f"this review was changed elsewhere (another tab or person): you have version {sent}, "
            f"it is now at {current}. Nothing was saved; reload to see the current state.",
        )
        self.current = current


@dataclass
class Changed:
    """What a change gives back: the new version, the splice, the review after it."""

    version: int
    splice: Splice
    review: Review
    min_score: float


class Reviews:
    """The reviews of a memory, kept in its store's review table.

    The state of the reviews last used is kept in memory with its version and used while the
    stored version is the same: a change then reads no snapshot. Beads are never changed in
    place (an operation makes new ones), so a copy of the bead list is a consistent view for
    a reader.
    """

    CACHED = 16  # reviews whose state is kept in memory

    def __init__(self, table: ReviewTable):
        self.table = table
        self._cache: dict[str, tuple[int, Review]] = {}
        self._cache_lock = threading.Lock()

    @staticmethod
    def _found(review_id: str):
        """``ReviewNotFound`` as the service's 404."""
        return ServiceError(404, "review_not_found", f"no review {review_id}")

    def create(
        self, name: str, review: Review, *, origin: str, min_score: float, owner: str = ""
    ) -> str:
        review_id = secrets.token_urlsafe(12)
        state = json.dumps(review.to_json(), ensure_ascii=False)
        self.table.create(review_id, name[:MAX_NAME], origin, min_score, state, _now(), owner)
        return review_id

    @staticmethod
    def _check_owner(row: ReviewRow, by: str, may_all: bool) -> None:
        """403 unless ``by`` opened the review (or may act on all, or it has no owner)."""
        if row.owner and row.owner != by and not may_all:
            raise ServiceError(
                403, "not_your_review",
                f"review {row.id} belongs to key {row.owner!r}; only that key or an admin "
                "key may change it",
            )

    def _state(self, edit: ReviewEdit) -> Review:
        """The review's state at the row's version, for the caller to change."""
        row = edit.row
        with self._cache_lock:
            hit = self._cache.get(row.id)
        if hit is None or hit[0] != row.version:
            review = Review.from_json(json.loads(edit.snapshot()))
            for start, removed, added, next_id in edit.journal():
                review.beads[start : start + removed] = _beads(added)
                review.next_id = next_id
            self._remember(row.id, row.version, review)
            hit = (row.version, review)
        kept = hit[1]
        return Review(kept.sections, list(kept.beads), kept.next_id)

    def _remember(self, review_id: str, version: int, review: Review) -> None:
        with self._cache_lock:
            self._cache.pop(review_id, None)
            self._cache[review_id] = (version, review)
            while len(self._cache) > self.CACHED:
                self._cache.pop(next(iter(self._cache)))

    def load(self, review_id: str) -> tuple[ReviewRow, Review]:
        try:
            with self.table.reading(review_id) as edit:
                review = self._state(edit)
        except ReviewNotFound:
            raise self._found(review_id) from None
        return edit.row, review

    def list(self, limit: int = 100) -> list[ReviewRow]:
        return self.table.list(limit)

    def delete(self, review_id: str, *, by: str = "", may_all: bool = True) -> None:
        try:
            with self.table.reading(review_id) as edit:
                self._check_owner(edit.row, by, may_all)
            self.table.delete(review_id)
        except ReviewNotFound:
            raise self._found(review_id) from None
        with self._cache_lock:
            self._cache.pop(review_id, None)

    def change(
        self, review_id: str, version: int, op: dict, *, max_chars: int, by: str = "",
        may_all: bool = True,
    ) -> Changed:
        """Apply ``op`` made on ``version``; the new version, the splice it made, the review.

        ``op`` may be ``{"op": "undo"}`` or ``{"op": "redo"}``. An operation that changes
        nothing saves nothing: the version stays, the splice is empty. ``by`` is the key's
        name; unless ``may_all``, it must be the review's owner.
        """
        try:
            with self.table.editing(review_id) as edit:
                row = edit.row
                self._check_owner(row, by, may_all)
                if version != row.version:
                    raise Conflict(version, row.version)
                review = self._state(edit)
                if op.get("op") in ("undo", "redo"):
                    splice = _history_step(edit, op["op"])
                else:
                    splice = trimmed(plan(review, op, max_chars, min_score=row.min_score))
                    if not splice.removed and not splice.added:
                        return Changed(row.version, splice, review, row.min_score)
                    logged = {k: v for k, v in op.items() if k != "build"}
                    edit.log_edit(json.dumps(logged, ensure_ascii=False), splice.start,
                                  _beads_json(splice.removed), _beads_json(splice.added),
                                  _now(), by, HISTORY_KEPT)
                apply(review, splice)
                new = row.version + 1
                if new - row.snapshot_version >= SNAPSHOT_EVERY:
                    edit.write_snapshot(json.dumps(review.to_json(), ensure_ascii=False), new)
                else:
                    edit.add_journal(new, splice.start, len(splice.removed),
                                     _beads_json(splice.added), review.next_id)
                edit.set_version(new, _now())
        except ReviewNotFound:
            raise self._found(review_id) from None
        self._remember(review_id, new, review)  # only once committed
        return Changed(new, splice, review, row.min_score)

    def history(self, review_id: str) -> dict:
        done, undone = self.table.history(review_id)
        return {"edits": done, "undone": undone}

    def finish(
        self, review_id: str, version: int, reviewer: str, *, may_all: bool = True
    ) -> tuple[ReviewRow, Review]:
        """Mark the review finished by ``reviewer`` (the key's name; unless ``may_all``, the
        review's owner)."""
        try:
            with self.table.editing(review_id) as edit:
                self._check_owner(edit.row, reviewer, may_all)
                if version != edit.row.version:
                    raise Conflict(version, edit.row.version)
                edit.finish(_now(), reviewer)
        except ReviewNotFound:
            raise self._found(review_id) from None
        return self.load(review_id)


def _history_step(edit: ReviewEdit, which: str) -> Splice:
    step = edit.history_step(which)
    if step is None:
        raise ServiceError(409, f"nothing_to_{which}", f"there is nothing to {which}")
    start, removed, added = step
    if which == "undo":
        return Splice(start, _beads(added), _beads(removed))
    return Splice(start, _beads(removed), _beads(added))


def _beads_json(beads: list[Bead]) -> str:
    return json.dumps([vars(b) for b in beads], ensure_ascii=False)


def _beads(text: str) -> list[Bead]:
    return [Bead(**b) for b in json.loads(text)]


# -- what a finished review gives -------------------------------------------------------------


def reviewed_units(
    info: ReviewRow, review: Review, reviewer: str, when: str
) -> Iterator[TranslationUnit]:
    """The confirmed pairs as translation units with provenance and who reviewed them when."""
    for bead in review.beads:
        if bead.status != "confirmed" or not bead.paired:
            continue
        sec = review.sections[bead.section]
        props = {
            "x-document": info.name,
            "x-speaker": sec.en_speaker or sec.zh_speaker,
            "x-country": sec.country,
            "x-turn": "" if sec.turn is None else str(sec.turn),
            "x-score": "" if bead.score is None else f"{bead.score:.4f}",
            "x-reviewed": "yes",
            "x-reviewer": reviewer,
            "x-review-date": when,
        }
        yield TranslationUnit(
            source=bead.text("zh"),
            target=bead.text("en"),
            source_lang="zh-CN",
            target_lang="en-US",
            props={k: v for k, v in props.items() if v},
            creationdate=when,
            creationid=reviewer,
        )


def summary(review: Review, min_score: float) -> dict:
    counts = {s: 0 for s in STATUSES}
    unpaired = doubtful = 0
    for bead in review.beads:
        counts[bead.status] += 1
        if not bead.paired:
            unpaired += 1
        elif bead.status == "pending" and (bead.score is not None and bead.score < min_score):
            doubtful += 1
    return {"beads": len(review.beads), **counts, "unpaired": unpaired, "doubtful": doubtful}


def as_rows(review: Review) -> Iterable[list]:
    """One row per bead for the spreadsheet: id, turn, speaker, zh, en, score, status."""
    for bead in review.beads:
        sec = review.sections[bead.section]
        yield [
            bead.id,
            bead.section,
            sec.en_speaker or sec.zh_speaker,
            bead.text("zh"),
            bead.text("en"),
            "" if bead.score is None else bead.score,
            bead.status,
        ]
