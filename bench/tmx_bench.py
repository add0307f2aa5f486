"""Time and peak memory of TMX writing and reading, streaming against a whole-tree baseline.

Usage: python bench/tmx_bench.py [--units 1000000] [--dir DIR]

Wall seconds are the figure checked; cpu seconds (user + system) are printed beside them
because a busy shared machine stretches wall time. Each phase runs in its own subprocess so
that its peak resident memory (ru_maxrss) is its own:
``floor`` (interpreter, lxml and the 4,000 UNPC pairs loaded, nothing written: the memory any
phase starts from), ``stream-write`` (aligner.tmx.write_tmx), ``stream-read``
(aligner.tmx.read_tmx), and the baseline ``tree-write`` / ``tree-read`` that build or parse the
whole document in memory with lxml (``tree-read`` parses the same file as ``stream-read``).
All phases handle the same number of units. Units cycle through the real UNPC dev pairs with
provenance properties. Targets (issue 4): 1,000,000 units written in ≤ 60 s and read back in
≤ 60 s, each with ≤ 200 MiB peak.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from itertools import cycle, islice
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aligner.models import SentencePair, TranslationUnit  # noqa: E402
from aligner.tmx import XML_LANG, pairs_to_units, read_tmx, tmx_date, write_tmx  # noqa: E402

UNPC = ROOT.parent / "shared" / "data" / "unpc-dev"
LIMIT_SECONDS = 60.0
LIMIT_MIB = 200.0


def load_pairs() -> list[tuple[str, str]]:
    zh = (UNPC / "zh.txt").read_text("utf-8").splitlines()
    en = (UNPC / "en.txt").read_text("utf-8").splitlines()
    return list(zip(zh, en, strict=True))


def sentence_pairs(n: int) -> Iterator[SentencePair]:
    for i, (zh, en) in enumerate(islice(cycle(load_pairs()), n)):
        yield SentencePair(
            zh=zh,
            en=en,
            score=0.5 + (i % 500) / 1000,
            document=f"A/69/{1 + i // 4000}",
            turn=i // 40,
            speaker="Mr. Rycroft" if i % 2 else "主席",
            country="United Kingdom" if i % 2 else "",
        )


def tree_write(path: Path, units: Iterator[TranslationUnit]) -> int:
    """Baseline: the whole document as one lxml tree, serialised at the end."""
    from lxml import etree

    root = etree.Element("tmx", version="1.4")
    etree.SubElement(
        root,
        "header",
        creationtool="bench",
        creationtoolversion="1",
        segtype="sentence",
        adminlang="en-US",
        srclang="zh-CN",
        datatype="plaintext",
        creationdate=tmx_date(),
    ).set("o-tmf", "bench")
    body = etree.SubElement(root, "body")
    count = 0
    for unit in units:
        tu = etree.SubElement(body, "tu", creationid=unit.creationid or "bench")
        for key, value in unit.props.items():
            etree.SubElement(tu, "prop", type=key).text = value
        for lang, text in ((unit.source_lang, unit.source), (unit.target_lang, unit.target)):
            etree.SubElement(etree.SubElement(tu, "tuv", {XML_LANG: lang}), "seg").text = text
        count += 1
    etree.ElementTree(root).write(str(path), encoding="UTF-8", xml_declaration=True)
    return count


def tree_read(path: Path) -> Iterator[TranslationUnit]:
    """Baseline: parse the whole file, then walk it."""
    from lxml import etree

    tree = etree.parse(str(path))
    for tu in tree.iter("tu"):
        props = {p.get("type"): p.text for p in tu.findall("prop")}
        (src, tgt) = tu.findall("tuv")
        yield TranslationUnit(
            source=src.findtext("seg"),
            target=tgt.findtext("seg"),
            source_lang=src.get(XML_LANG),
            target_lang=tgt.get(XML_LANG),
            props=props,
        )


def run_phase(phase: str, units: int, path: Path) -> dict:
    start = time.perf_counter()
    if phase == "floor":
        count = len(load_pairs())
    elif phase == "stream-write":
        count = write_tmx(path, pairs_to_units(sentence_pairs(units)))
    elif phase == "tree-write":
        count = tree_write(path, pairs_to_units(sentence_pairs(units)))
    else:
        reader = read_tmx(path) if phase == "stream-read" else tree_read(path)
        count = sum(1 for unit in reader if unit.source and unit.target)
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "phase": phase,
        "units": count,
        "seconds": seconds,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_mib": usage.ru_maxrss / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=None, help="where the TMX files go")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(run_phase(args.phase, args.units, args.file)))
        return 0

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="tmx-bench-") as tmp:
        stream_file, tree_file = Path(tmp) / "stream.tmx", Path(tmp) / "tree.tmx"
        plan = [
            ("floor", 0, stream_file),
            ("stream-write", args.units, stream_file),
            ("stream-read", args.units, stream_file),
            ("tree-write", args.units, tree_file),
            ("tree-read", args.units, stream_file),
        ]
        results = []
        for phase, units, path in plan:
            command = [sys.executable, __file__, "--phase", phase, "--units", str(units)]
            done = subprocess.run([*command, "--file", str(path)], capture_output=True, text=True)
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return 1
            result = json.loads(done.stdout)
            if path.exists():
                result["file_mib"] = path.stat().st_size / 2**20
            results.append(result)
            print(
                f"{phase:13s} {result['units']:>9,d} units {result['seconds']:7.1f} s "
                f"(cpu {result['cpu_seconds']:5.1f} s) "
                f"{result['units'] / max(result['seconds'], 1e-9):>9,.0f} units/s "
                f"peak {result['peak_mib']:8.1f} MiB"
                + (f"  file {result['file_mib']:.0f} MiB" if "file_mib" in result else ""),
                flush=True,
            )
    ok = all(
        r["seconds"] <= LIMIT_SECONDS and r["peak_mib"] <= LIMIT_MIB
        for r in results
        if r["phase"].startswith("stream")
    )
    print(
        f"streaming phases within {LIMIT_SECONDS:.0f} s and {LIMIT_MIB:.0f} MiB "
        f"for {args.units:,d} units: {'yes' if ok else 'NO'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
