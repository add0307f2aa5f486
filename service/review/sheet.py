"""A review as a spreadsheet (XLSX or TSV) and back, so that a reviewer can work in Excel.

One row per pair: ``pair, turn, speaker, zh, en, score, status``. The reviewer may change the
texts and the status; pairs are merged, split or moved in the editor. A sheet names the review
and the version it was exported at (an ``about`` sheet in XLSX, a first ``#`` line in TSV).
Reading one back checks everything before anything changes: a sheet of another tool, another
review or an older version, rows added, removed or reordered, a text over the segment limit,
a status that is not one of ours, each give one clear message and leave the review as it was.
"""

from __future__ import annotations

import csv
import io
import re
from typing import BinaryIO

from aligner.align.segment import split_sentences
from service.errors import ServiceError
from service.review.model import STATUSES, Bead, Review, as_rows

HEADER = ["pair", "turn", "speaker", "zh", "en", "score", "status"]
XLSX_MEDIA = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
TSV_MEDIA = "text/tab-separated-values; charset=utf-8"
_TSV_FIRST = re.compile(r"^# concordia review (\S+) version (\d+)\s*$")


def _bad(message: str) -> ServiceError:
    return ServiceError(422, "bad_sheet", message + " Nothing was changed.")


def to_xlsx(review_id: str, version: int, review: Review) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    book = Workbook(write_only=False)
    sheet = book.active
    sheet.title = "review"
    sheet.append(HEADER)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in as_rows(review):
        sheet.append(row)
    for col, width in zip("ABCDEFG", (7, 6, 24, 60, 60, 8, 11), strict=True):
        sheet.column_dimensions[col].width = width
    wrap = Alignment(wrap_text=True, vertical="top")
    for row in sheet.iter_rows(min_row=2, min_col=4, max_col=5):
        for cell in row:
            cell.alignment = wrap
    sheet.freeze_panes = "A2"
    about = book.create_sheet("about")
    about.append(["review", review_id])
    about.append(["version", version])
    about.append(["edit", "change the zh, en and status columns only (pending, confirmed, "
                          "rejected); merge, split and move pairs in the editor"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def to_tsv(review_id: str, version: int, review: Review) -> bytes:
    out = io.StringIO()
    out.write(f"# concordia review {review_id} version {version}\n")
    writer = csv.writer(out, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(HEADER)
    for row in as_rows(review):
        writer.writerow(["" if v is None else v for v in row])
    return out.getvalue().encode("utf-8")


def _read_xlsx(data: BinaryIO) -> tuple[str, int, list[list]]:
    import zipfile

    from openpyxl import load_workbook

    try:
        book = load_workbook(data, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise _bad(f"this is not a readable XLSX file ({type(exc).__name__}).") from None
    if "review" not in book.sheetnames or "about" not in book.sheetnames:
        raise _bad(
            "this workbook was not exported by Concordia (it needs the sheets 'review' and "
            f"'about'; it has {', '.join(book.sheetnames)})."
        )
    about = {str(r[0]): r[1] for r in book["about"].iter_rows(values_only=True) if r and r[0]}
    rows = [list(r) for r in book["review"].iter_rows(values_only=True)]
    try:
        version = int(about.get("version"))
    except (TypeError, ValueError):
        raise _bad("the 'about' sheet has no version.") from None
    return str(about.get("review", "")), version, rows


def _read_tsv(data: BinaryIO) -> tuple[str, int, list[list]]:
    try:
        text = data.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _bad("this TSV is not UTF-8 text.") from None
    first, _, rest = text.partition("\n")
    match = _TSV_FIRST.match(first)
    if not match:
        raise _bad("this TSV was not exported by Concordia (its first line names the review).")
    rows = [list(r) for r in csv.reader(io.StringIO(rest), delimiter="\t")]
    return match.group(1), int(match.group(2)), rows


def read_sheet(data: BinaryIO, filename: str) -> tuple[str, int, list[list]]:
    """Review id, version and rows (header first) of an uploaded XLSX or TSV."""
    head = data.read(4)
    data.seek(0)
    if head.startswith(b"PK"):
        return _read_xlsx(data)
    if filename.lower().endswith((".xlsx", ".xlsm")):
        raise _bad("this file is named .xlsx but is not an XLSX workbook.")
    return _read_tsv(data)


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
