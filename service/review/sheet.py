"""A review as a spreadsheet (XLSX or TSV) and back, so that a reviewer can work in Excel.

One row per pair: ``pair, turn, speaker, zh, en, score, status``. The reviewer may change the
texts and the status; pairs are merged, split or moved in the editor. A sheet names the review
and the version it was exported at (an ``about`` sheet in XLSX, a first ``#`` line in TSV).
Reading one back checks everything before anything changes: a sheet of another tool, another
review or an older version, rows added, removed or reordered, a text over the segment limit,
a status that is not one of ours, each give one clear message and leave the review as it was.

Every cell is written as text: an XLSX cell has the explicit string type (a side starting with
``=`` is never a formula), and a TSV field starting with ``= + - @`` (or with the quote itself)
gets a leading ``'``, as spreadsheet programs expect, which reading takes off again. Reading
takes cells as text too (a formula's text, never its cached value), so an unchanged export
comes back unchanged.

Reading is bounded whatever the file declares: the XLSX zip is vetted first (entries, expanded
bytes, XML tags), its declared dimension is ignored, and rows are read one at a time up to the
review's pair count + 1 and the export's columns only.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import BinaryIO

from aligner.align.segment import split_sentences
from aligner.errors import InputTooLarge
from aligner.read.archive import BrokenArchive, check_zip
from service.errors import ServiceError
from service.review.model import STATUSES, Bead, Review, as_rows

HEADER = ["pair", "turn", "speaker", "zh", "en", "score", "status"]
XLSX_MEDIA = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
TSV_MEDIA = "text/tab-separated-values; charset=utf-8"
_TSV_FIRST = re.compile(r"^# concordia review (\S+) version (\d+)\s*$")
_RISKY = ("=", "+", "-", "@", "\t", "\r", "'")  # a spreadsheet may take these as a formula
MAX_XLSX_ENTRIES = 100  # an exported workbook has about ten
ABOUT_ROWS = 10


@dataclass(frozen=True)
class SheetLimits:
    """What reading one uploaded sheet may cost."""

    max_rows: int  # rows read at most (the review's pairs + the header)
    max_bytes: int  # expanded bytes of an XLSX
    max_tags: int  # XML tags in an XLSX's parts


def sheet_limits(pairs: int, max_bytes: int) -> SheetLimits:
    rows = pairs + 1
    tags = 200 * (rows + ABOUT_ROWS) + 10_000  # an exported row has about 20
    return SheetLimits(max_rows=rows, max_bytes=max_bytes, max_tags=tags)


def _bad(message: str) -> ServiceError:
    return ServiceError(422, "bad_sheet", message + " Nothing was changed.")


def to_xlsx(review_id: str, version: int, review: Review) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    book = Workbook(write_only=False)
    sheet = book.active
    sheet.title = "review"
    _append_text(sheet, HEADER)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in as_rows(review):
        _append_text(sheet, row)
    for col, width in zip("ABCDEFG", (7, 6, 24, 60, 60, 8, 11), strict=True):
        sheet.column_dimensions[col].width = width
    wrap = Alignment(wrap_text=True, vertical="top")
    for row in sheet.iter_rows(min_row=2, min_col=4, max_col=5):
        for cell in row:
            cell.alignment = wrap
    sheet.freeze_panes = "A2"
    about = book.create_sheet("about")
    _append_text(about, ["review", review_id])
    _append_text(about, ["version", version])
    _append_text(about, ["edit", "change the zh, en and status columns only (pending, "
                                 "confirmed, rejected); merge, split and move pairs in the editor"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _append_text(sheet, values: list) -> None:
    """A row of text cells (explicit string type: ``=1+1`` stays text, never a formula)."""
    sheet.append(["" if v is None else str(v) for v in values])
    for cell in sheet[sheet.max_row]:
        cell.data_type = "s"


def escape_tsv(value: str) -> str:
    """A leading ``'`` before text a spreadsheet would read as a formula (or starting with the
    quote itself, so that :func:`unescape_tsv` is exact)."""
    return "'" + value if value.startswith(_RISKY) else value


def unescape_tsv(value: str) -> str:
    return value[1:] if value.startswith("'") else value


def to_tsv(review_id: str, version: int, review: Review) -> bytes:
    out = io.StringIO()
    out.write(f"# concordia review {review_id} version {version}\n")
    writer = csv.writer(out, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(HEADER)
    for row in as_rows(review):
        writer.writerow([escape_tsv("" if v is None else str(v)) for v in row])
    return out.getvalue().encode("utf-8")


def _read_xlsx(data: BinaryIO, limits: SheetLimits) -> tuple[str, int, list[list]]:
    from openpyxl import load_workbook

    try:
        check_zip(data, max_entries=MAX_XLSX_ENTRIES, max_bytes=limits.max_bytes,
                  what="the workbook", count_tags=lambda name: name.endswith(".xml"),
                  max_tags=limits.max_tags)
    except InputTooLarge as exc:
        raise ServiceError(413, "sheet_too_large", f"{exc}; nothing was changed.") from None
    except BrokenArchive:
        raise _bad("this is not a readable XLSX file (a damaged zip).") from None
    data.seek(0)
    try:
        book = load_workbook(data, read_only=True, data_only=False)
        if "review" not in book.sheetnames or "about" not in book.sheetnames:
            raise _bad(
                "this workbook was not exported by Concordia (it needs the sheets 'review' "
                f"and 'about'; it has {', '.join(book.sheetnames[:10])})."
            )
        about = {}
        for r in _rows(book["about"], ABOUT_ROWS, 2):
            if r[0] is not None:
                about[str(r[0])] = r[1]
        rows = _rows(book["review"], limits.max_rows + 1, len(HEADER))
    except ServiceError:
        raise
    except Exception as exc:  # noqa: BLE001 - any damage in the parts is the file's fault
        raise _bad(f"this is not a readable XLSX file ({type(exc).__name__}).") from None
    try:
        version = int(str(about.get("version")))
    except (TypeError, ValueError):
        raise _bad("the 'about' sheet has no version.") from None
    return str(about.get("review", "")), version, rows


def _rows(sheet, max_rows: int, columns: int) -> list[list]:
    """The first ``max_rows`` rows of the first ``columns`` columns, whatever the sheet's
    declared dimension says (a sheet may declare A1:XFD1048576 and hold one cell)."""
    sheet.reset_dimensions()
    return [list(r) for r in sheet.iter_rows(min_row=1, max_row=max_rows, max_col=columns,
                                             values_only=True)]


def _read_tsv(data: BinaryIO, limits: SheetLimits) -> tuple[str, int, list[list]]:
    try:
        text = data.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _bad("this TSV is not UTF-8 text.") from None
    first, _, rest = text.partition("\n")
    match = _TSV_FIRST.match(first)
    if not match:
        raise _bad("this TSV was not exported by Concordia (its first line names the review).")
    rows = []
    try:
        for row in csv.reader(io.StringIO(rest), delimiter="\t"):
            rows.append([unescape_tsv(v) for v in row[: len(HEADER)]])
            if len(rows) > limits.max_rows:
                break
    except csv.Error as exc:
        raise _bad(f"this TSV cannot be read ({exc}).") from None
    return match.group(1), int(match.group(2)), rows


def read_sheet(data: BinaryIO, filename: str, limits: SheetLimits) -> tuple[str, int, list[list]]:
    """Review id, version and rows (header first) of an uploaded XLSX or TSV: at most
    ``limits.max_rows`` + 1 rows (one more than the review has shows rows were added)."""
    head = data.read(4)
    data.seek(0)
    if head.startswith(b"PK"):
        return _read_xlsx(data, limits)
    if filename.lower().endswith((".xlsx", ".xlsm")):
        raise _bad("this file is named .xlsx but is not an XLSX workbook.")
    return _read_tsv(data, limits)


def _cell(value) -> str:
    return "" if value is None else str(value).strip()


def beads_from_sheet(
    review: Review, rows: list[list], max_chars: int
) -> list[Bead]:
    """The review's beads with the sheet's texts and statuses, or a ``bad_sheet`` error."""
    rows = [r for r in rows if any(_cell(v) for v in r)]
    if not rows or [_cell(v).lower() for v in rows[0][: len(HEADER)]] != HEADER:
        found = ", ".join(_cell(v) for v in rows[0]) if rows else "nothing"
        raise _bad(f"the columns must be {', '.join(HEADER)}; found {found}.")
    body = rows[1:]
    by_id = {b.id: b for b in review.beads}
    ids: list[int] = []
    added: list[int] = []
    for n, row in enumerate(body, start=2):
        try:
            ids.append(int(float(_cell(row[0]))))
        except (ValueError, IndexError):
            added.append(n)
    problems = []
    if added:
        problems.append(f"rows without a pair number (added?): {_few(added)}")
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        problems.append(f"pair numbers not in this review: {_few(unknown)}")
    missing = [b.id for b in review.beads if b.id not in set(ids)]
    if missing:
        problems.append(f"pairs missing from the sheet (rows removed?): {_few(missing)}")
    if len(set(ids)) != len(ids):
        problems.append("some pair numbers appear twice")
    if problems:
        raise _bad(
            "the sheet's rows do not match the review: " + "; ".join(problems)
            + ". Add, remove, merge or split pairs in the editor, not in the sheet."
        )
    if ids != [b.id for b in review.beads]:
        raise _bad("the rows were reordered; keep them in the exported order.")
    out: list[Bead] = []
    next_id = review.next_id
    for n, (row, bead) in enumerate(zip(body, review.beads, strict=True), start=2):
        row = row + [None] * (len(HEADER) - len(row))
        zh, en, status = _cell(row[3]), _cell(row[4]), _cell(row[6]).lower() or "pending"
        if status not in STATUSES:
            raise _bad(f"row {n}: status {status!r} is not one of {', '.join(STATUSES)}.")
        for side, text in (("zh", zh), ("en", en)):
            if len(text) > max_chars:
                raise _bad(
                    f"row {n}: the {side} text has {len(text):,} characters; a segment "
                    f"holds at most {max_chars:,}."
                )
        if not zh and not en:
            raise _bad(f"row {n}: both texts are empty.")
        if status == "confirmed" and not (zh and en):
            raise _bad(f"row {n}: a pair with an empty side cannot be confirmed.")
        same_text = zh == bead.text("zh") and en == bead.text("en")
        if same_text and status == bead.status:
            out.append(bead)
            continue
        out.append(
            Bead(
                id=next_id,
                section=bead.section,
                zh=bead.zh if zh == bead.text("zh") else split_sentences(zh, "zh"),
                en=bead.en if en == bead.text("en") else split_sentences(en, "en"),
                score=bead.score if same_text else None,
                status=status,
            )
        )
        next_id += 1
    review.next_id = next_id
    return out


def _few(values: list) -> str:
    shown = ", ".join(str(v) for v in values[:10])
    return shown + (f" and {len(values) - 10} more" if len(values) > 10 else "")
