"""A unit as a database row, and an import chunk's plan under a merge rule: what SQLite and
PostgreSQL stores share (each runs its own SQL through the ``ImportOps`` it gives).

A job's row (``job_from_row``, ``job_assignments``) is theirs alike too.

A row keeps both segments as plain text (``zh``, ``en``: what indexes read), their runs when
they have markup (``zh_runs``, ``en_runs``, JSON), what their TMX said beyond that (``tmx``,
JSON), languages as written, provenance, a content hash (identity for ``merge``) and a source
key (identity for ``keep_newest``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from aligner.markup import has_markup, plain_text, runs_from_data, runs_to_data
from aligner.models import Run, TranslationUnit
from service.memory.matching import fold_case
from service.memory.store import (
    DOCUMENT_PROPS,
    SPEAKER_PROPS,
    ImportRecord,
    ImportResult,
    Job,
    MergeRule,
    StoredUnit,
    StoreError,
    lang_family,
    normalise_text,
    tmx_data,
)

TMX_DATE = re.compile(r"\d{8}T\d{6}Z")

# The columns a StoredUnit is read from, in ``row_to_unit``'s order.
COLUMNS = (
    "id, hash, zh, en, source_lang, target_lang, props, document, speaker, creationdate, "
    "creationid, created_at, origin, zh_runs, en_runs, tmx, version, import_id, tuid"
)
# The columns an insert row fills, in ``unit_row``'s order.
INSERT_COLUMNS = (
    "hash", "source_key", "zh", "en", "zh_fold", "en_fold", "zh_runs", "en_runs",
    "source_lang", "target_lang", "props", "tmx", "document", "speaker", "tuid", "creationdate",
    "creationid", "created_at", "origin", "import_id",
)
# Positions in an insert row.
HASH, KEY, ZH, EN, ZH_RUNS, EN_RUNS, PROPS, TMX = 0, 1, 2, 3, 6, 7, 10, 11
DOC, SPEAKER, TUID, DATE = 12, 13, 14, 15


def first_prop(props: dict[str, str], names: tuple[str, ...]) -> str:
    for name in names:
        if props.get(name):
            return props[name]
    return ""


def now_tmx() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _json_encoder() -> Callable[[object], str]:
    """``json.dumps(value, ensure_ascii=False, separators=(",", ":"))``, made once: ``dumps``
    and ``JSONEncoder.encode`` make a new C encoder every call, most of the cost of the two
    small JSON texts a bulk import makes for every unit."""
    encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator (another Python)
        return encoder.encode
    c_encode = make(None, encoder.default, json.encoder.encode_basestring, None, ":", ",",
                    False, False, True)
    return lambda value: "".join(c_encode(value, 0))


_JSON = _json_encoder()
_family = functools.lru_cache(maxsize=64)(lang_family)  # a file spells its languages a few ways


def to_json(value) -> str:
    return _JSON(value)


def runs_json(runs: list[Run] | None) -> str | None:
    return to_json(runs_to_data(runs)) if runs is not None else None


def row_to_unit(row: tuple) -> StoredUnit:
    return StoredUnit(
        id=row[0],
        hash=row[1],
        zh=row[2],
        en=row[3],
        source_lang=row[4],
        target_lang=row[5],
        props=json.loads(row[6]),
        document=row[7],
        speaker=row[8],
        creationdate=row[9],
        creationid=row[10],
        created_at=row[11],
        origin=row[12],
        zh_runs=runs_from_data(json.loads(row[13])) if row[13] else None,
        en_runs=runs_from_data(json.loads(row[14])) if row[14] else None,
        tmx=json.loads(row[15]) if row[15] else None,
        version=row[16],
        import_id=row[17],
        tuid=row[18],
    )


def record_from_row(row: tuple) -> ImportRecord:
    """An ``import_log`` row (id, source, rule, started, finished, state, result, header,
    error, job) as a record."""
    return ImportRecord(
        id=row[0],
        source=row[1],
        rule=row[2],
        started=row[3],
        finished=row[4],
        state=row[5],
        result=json.loads(row[6] or "{}"),
        header=json.loads(row[7]) if row[7] else None,
        error=row[8],
        job=row[9] or "",
    )


def unit_date(attrs: dict, creationdate: str) -> str:
    """When a unit was last made or changed (TMX dates compare as strings)."""
    date = attrs.get("changedate", "")
    return date if TMX_DATE.fullmatch(date) else creationdate


def unit_row(
    unit: TranslationUnit, created_at: str, origin: str, import_id: int, max_chars: int
) -> list | str:
    """The insert row for ``unit``, or the reason it is skipped.

    The hash and source key are ``store.content_hash`` and ``store.source_key``, each segment
    normalised once for both (a bulk import makes a row for every unit it reads)."""
    src, tgt = _family(unit.source_lang), _family(unit.target_lang)
    if src == "zh":
        if tgt != "en":
            return "not_zh_en"
        zh, en, zh_runs, en_runs = unit.source, unit.target, unit.source_runs, unit.target_runs
    elif src == "en" and tgt == "zh":
        zh, en, zh_runs, en_runs = unit.target, unit.source, unit.target_runs, unit.source_runs
    else:
        return "not_zh_en"
    zh, en = zh.strip(), en.strip()
    if not zh or not en:
        return "empty_segment"
    if len(zh) > max_chars or len(en) > max_chars:
        return "segment_too_long"
    props = {str(k): str(v) for k, v in (unit.props or {}).items()}
    zh_json = runs_json(zh_runs) if zh_runs is not None else None
    en_json = runs_json(en_runs) if en_runs is not None else None
    normal_zh, normal_en = normalise_text(zh), normalise_text(en)
    identity = f"{normal_zh}\x00{normal_en}"
    if has_markup(zh_runs) or has_markup(en_runs):
        identity += f"\x00{zh_json}\x00{en_json}"
    # The source segment stripped normalises as it does unstripped: no whitespace composes.
    normal_source = normal_zh if src == "zh" else normal_en
    tmx = tmx_data(unit)
    date = unit.creationdate if TMX_DATE.fullmatch(unit.creationdate or "") else ""
    if not date and tmx is None:
        date = created_at  # made by Concordia now: its creation date, fixed from here on
    return [
        hashlib.sha256(identity.encode()).hexdigest(),
        hashlib.sha256(f"{src}\x00{normal_source}".encode()).hexdigest(),
        zh,
        en,
        fold_case(zh),
        fold_case(en),
        zh_json,
        en_json,
        unit.source_lang,
        unit.target_lang,
        _JSON(dict(sorted(props.items()))),
        _JSON(tmx) if tmx is not None else None,
        first_prop(props, DOCUMENT_PROPS),
        first_prop(props, SPEAKER_PROPS),
        (unit.attrs or {}).get("tuid", ""),
        date,
        unit.creationid or "",
        created_at,
        origin,
        import_id,
    ]


@dataclass
class ImportOps:
    """What an import chunk's plan needs a store to do, inside its write transaction.

    - ``existing(column, values, with_date)``: stored units whose ``column`` is one of
      ``values``, as value → id (the first) or, ``with_date``, value → (id, date);
    - ``insert(rows)``: store the rows, their new ids in order;
    - ``merge(row, unit_id)``: let a stored unit gain what an identical imported one adds;
    - ``retire(ids)``: tombstone units replaced by newer ones;
    - ``stored(unit_id)``: a stored unit's (hash, props, tmx) as stored, or None.
    """

    existing: Callable[[str, list[str], bool], dict]
    insert: Callable[[list[list]], list[int]]
    merge: Callable[[list, int], None]
    retire: Callable[[list[int]], None]
    stored: Callable[[int], tuple | None]


def apply_chunk(ops: ImportOps, rows: list[list], rule: MergeRule, result: ImportResult) -> None:
    """Store one chunk of rows (each ending with its ``unit_date``) under ``rule``."""
    if rule is MergeRule.KEEP_BOTH:
        ops.insert([r[:-1] for r in rows])
        result.imported += len(rows)
        return
    by_hash = ops.existing("hash", [r[HASH] for r in rows], False)
    by_key: dict = {}
    by_tuid: dict = {}
    if rule is MergeRule.KEEP_NEWEST:
        by_key = ops.existing("source_key", [r[KEY] for r in rows], True)
    elif rule is MergeRule.BY_TUID:
        by_tuid = ops.existing("tuid", [r[TUID] for r in rows if r[TUID]], False)
    inserts: list[list] = []
    pending: set[str] = set()  # hashes, keys and tuids in inserts, for duplicates in a chunk

    def flush() -> None:
        if not inserts:
            return
        ids = ops.insert([row[:-1] for row in inserts])
        for uid, row in zip(ids, inserts, strict=True):
            by_hash[row[HASH]] = uid
            if rule is MergeRule.KEEP_NEWEST:
                by_key[row[KEY]] = (uid, row[-1])
            if row[TUID]:
                by_tuid[row[TUID]] = uid
        inserts.clear()
        pending.clear()

    replaced: list[int] = []
    for row in rows:
        if row[HASH] in pending or row[KEY] in pending or row[TUID] in pending:
            flush()
        if rule is MergeRule.BY_TUID and row[TUID] and row[TUID] in by_tuid:
            stored = ops.stored(by_tuid[row[TUID]])
            if stored is not None and tuple(stored) == (row[HASH], row[PROPS], row[TMX]):
                result.merged += 1  # identical: the unit stays as it is, with its id
                continue
            replaced.append(by_tuid.pop(row[TUID]))
            result.replaced += 1
        elif rule is MergeRule.KEEP_NEWEST and row[KEY] in by_key and row[HASH] not in by_hash:
            stored_id, stored_date = by_key[row[KEY]]
            if row[-1] and (not stored_date or row[-1] > stored_date):
                replaced.append(stored_id)
                del by_key[row[KEY]]
                result.replaced += 1
            else:
                result.skip("older_than_stored")
                continue
        elif row[HASH] in by_hash:
            ops.merge(row, by_hash[row[HASH]])
            result.merged += 1
            continue
        else:
            result.imported += 1
        pending.add(row[HASH])
        if rule is MergeRule.KEEP_NEWEST:
            pending.add(row[KEY])
        if row[TUID]:
            pending.add(row[TUID])
        inserts.append(row)
    if replaced:
        ops.retire(replaced)
    flush()


def edited_row(
    unit: StoredUnit,
    zh: list[Run] | None,
    en: list[Run] | None,
    props: dict[str, str] | None,
    changeid: str,
    max_chars: int,
) -> tuple[list, bool]:
    """The row of ``unit`` after an edit (its ``changedate`` now), and whether its text
    changed (then it is stored under a new id). Raises StoreError for a segment left empty
    or over ``max_chars``."""
    tu = unit.to_translation_unit()
    src_zh = lang_family(unit.source_lang) == "zh"
    for lang, runs in (("zh", zh), ("en", en)):
        if runs is None:
            continue
        text = plain_text(runs).strip()
        if not text:
            raise StoreError("empty_segment", f"the {lang} segment would be empty")
        if len(text) > max_chars:
            raise StoreError(
                "segment_too_long",
                f"{lang} segment of {len(text)} characters; the limit is {max_chars}",
                422,
            )
        kept = runs if has_markup(runs) or text != runs[0] else None
        if (lang == "zh") == src_zh:
            tu.source, tu.source_runs = text, kept
        else:
            tu.target, tu.target_runs = text, kept
    if props is not None:
        tu.props = {str(k): str(v) for k, v in props.items()}
    now = now_tmx()
    if tu.source_tuv is not None:  # TMX attributes; Concordia's units get them too
        tu.attrs["changedate"] = now
        if changeid:
            tu.attrs["changeid"] = changeid
    else:
        tu.attrs = {"changedate": now, **({"changeid": changeid} if changeid else {})}
    row = unit_row(tu, unit.created_at, unit.origin, unit.import_id, max_chars)
    assert not isinstance(row, str)
    row[TMX] = to_json(tmx_data(tu) if tu.source_tuv is not None else {"attrs": tu.attrs})
    text_changed = (zh is not None or en is not None) and (row[ZH], row[EN]) != (unit.zh, unit.en)
    return row, text_changed


# -- jobs ---------------------------------------------------------------------------------------
JOB_COLUMNS = (
    "id, state, created, updated, options, total, done, failed, results, error, memory, "
    "owner, worker, lease_until, attempts, cancel_requested"
)
# The columns an update of a job may set (``updated`` is set by every one).
JOB_FIELDS = {"state", "total", "done", "failed", "results", "error", "memory", "options",
              "owner", "worker", "lease_until", "attempts", "cancel_requested"}


def job_stamp() -> str:
    """A job's ``created`` and ``updated`` time: now, to the second, in UTC."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def job_from_row(row: tuple, results: list | None) -> Job:
    """A ``job`` row (``JOB_COLUMNS``) as a job, with the pair reports ``results``."""
    return Job(
        *row[:4],
        json.loads(row[4]),
        *row[5:8],
        results,
        row[9] or "",
        json.loads(row[10]) if row[10] else None,
        owner=row[11],
        worker=row[12],
        lease_until=row[13],
        attempts=row[14],
        cancel_requested=bool(row[15]),
    )


def job_results(row: tuple, reports: list[tuple], offset: int, limit: int) -> list | None:
    """The pair reports of a job: its ``job_pair`` rows, or the list jobs of earlier versions
    kept whole in the row."""
    if reports:
        return [json.loads(r[0]) for r in reports]
    return json.loads(row[8])[offset : offset + limit] if row[8] else None


def job_assignments(fields: dict, placeholder: str) -> tuple[str, list]:
    """``fields`` of a job as the SET list of an UPDATE and its values, ``updated`` now."""
    unknown = set(fields) - JOB_FIELDS
    if unknown:
        raise ValueError(f"no job fields {sorted(unknown)}")
    for name in ("results", "memory", "options"):
        if name in fields and fields[name] is not None:
            fields[name] = to_json(fields[name])
    fields["updated"] = job_stamp()
    return ", ".join(f"{name} = {placeholder}" for name in fields), list(fields.values())
