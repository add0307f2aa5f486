"""How long refusing a hostile upload takes, next to the work the refusal spares (the timing
checks that were once asserts in tests/test_hardening.py).

Usage: python bench/refusal_bench.py [--rounds 3]

- a .docx bomb (17,000,000 empty paragraphs: about 100 KB that expand to 100 MB), refused by
  ``aligner.read.ingest.read_bytes`` from the zip's sizes and its tags counted while streaming;
  baseline: only inflating its document.xml, the least any parser would have to do;
- a zip of 850,000 central-directory records (what a probe sent), refused by
  ``service.jobs.check_archive`` from its end record; baseline: ``zipfile.ZipFile``
  reading the directory;
- a TMX of 3,000 units whose last segment is left open, refused by ``aligner.tmx.check_tmx``;
  baseline: reading the well-formed file's units with ``read_tmx``.

Medians of ``--rounds``, wall seconds.
"""

from __future__ import annotations

import argparse
import io
import statistics
import struct
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aligner.errors import InputError  # noqa: E402
from aligner.models import TranslationUnit  # noqa: E402
from aligner.read.ingest import ReadLimits, read_bytes  # noqa: E402
from aligner.tmx import TMXError, check_tmx, read_tmx, write_tmx  # noqa: E402
from service.errors import ServiceError  # noqa: E402
from service.jobs import check_archive  # noqa: E402

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def docx_bomb(paragraphs: int) -> bytes:
    document = (
        f'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="{W}"><w:body>'.encode()
        + b"<w:p><w:r><w:t>Hello world.</w:t></w:r></w:p>" + b"<w:p/>" * paragraphs
        + b"</w:body></w:document>"
    )
    types = (
        '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
        'content-types"><Default Extension="xml" ContentType="application/xml"/></Types>'
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", types)
        archive.writestr("word/document.xml", document)
    return buffer.getvalue()


def directory_only_zip(entries: int) -> bytes:
    record = struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0,
                         1, 0, 0, 0, 0, 0, 0) + b"x"
    directory = record * entries
    end64 = struct.pack("<4sQ2H2I4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, entries, entries,
                        len(directory), 0)
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, len(directory), 1)
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF,
                      0xFFFFFFFF, 0)
    return directory + end64 + locator + end


def median_seconds(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def refused(fn, *errors: type[BaseException]):
    def run() -> None:
        try:
            fn()
        except errors:
            return
        raise AssertionError("not refused")
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = []

    bomb = docx_bomb(17_000_000)
    rows.append((
        f".docx bomb ({len(bomb) / 1024:.0f} KB → 100 MB)",
        median_seconds(refused(lambda: read_bytes(bomb, "x.docx", "en", ReadLimits()),
                               InputError), args.rounds),
        "inflating document.xml",
        median_seconds(lambda: zipfile.ZipFile(io.BytesIO(bomb)).read("word/document.xml"),
                       args.rounds),
    ))

    records = directory_only_zip(850_000)
    rows.append((
        f"zip of 850,000 entries ({len(records) / 2**20:.0f} MiB)",
        median_seconds(refused(lambda: check_archive(io.BytesIO(records), 200 * 2**20, 10_000),
                               ServiceError), args.rounds),
        "zipfile reading its directory",
        median_seconds(lambda: zipfile.ZipFile(io.BytesIO(records)), args.rounds),
    ))

    with tempfile.TemporaryDirectory() as tmp:
        good = Path(tmp) / "good.tmx"
        write_tmx(good, [TranslationUnit(f"第{i}段。", f"Paragraph {i}.") for i in range(3000)])
        text = good.read_text(encoding="utf-8")
        cut = text.rindex("</seg>")
        late = Path(tmp) / "late.tmx"
        late.write_text(text[:cut] + text[cut + len("</seg>"):], encoding="utf-8")
        rows.append((
            "TMX of 3,000 units, error in the last",
            median_seconds(refused(lambda: check_tmx(late), TMXError), args.rounds),
            "read_tmx of the good file",
            median_seconds(lambda: sum(1 for _ in read_tmx(good)), args.rounds),
        ))

    print(f"{'upload':44} {'refused in':>10}   {'baseline':32} {'seconds':>8}")
    for what, seconds, baseline, base_seconds in rows:
        print(f"{what:44} {seconds:10.3f}   {baseline:32} {base_seconds:8.3f}")


if __name__ == "__main__":
    main()
