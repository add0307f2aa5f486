"""``concordia-tm``: maintain a memory's units from the command line, on its data folder.

    concordia-tm [--data DIR] import FILE.tmx [--rule merge|keep_both|keep_newest|by_tuid]
    concordia-tm [--data DIR] export [-o FILE] [--import-id N] [--document D]
    concordia-tm [--data DIR] show ID
    concordia-tm [--data DIR] edit ID --version V [--zh TEXT] [--en TEXT]
                                      [--prop TYPE=VALUE ...] [--changeid WHO]
    concordia-tm [--data DIR] use ID
    concordia-tm [--data DIR] delete [--id N ...] [--document D] [--speaker S] [--origin O]
                                     [--import-id N] [--since DATE] [--before DATE]
                                     [--contains TEXT]
    concordia-tm [--data DIR] imports [--limit N]
    concordia-tm [--data DIR] embed [--encoder SPEC] [--chunk N]
                                    [--workers N | --scheduler tcp://HOST:PORT]
    concordia-tm migrate --from DIR --to postgresql://user@host:port/db

``--store postgresql://…`` (or ``$CONCORDIA_STORE``) works on a shared memory instead of the
data folder's SQLite one.

The same operations as the API's ``/tm/*`` routes, through the same store (a running
service's indexes catch up within a second). Answers are JSON on stdout; bad input gives one
line on stderr and exit status 2. ``--data`` defaults to ``$CONCORDIA_DATA_DIR`` or ``./data``.
Segments are edited as the API shows them: the unit's inline tags as ``{1}``, ``{/1}``, ``{2/}``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import sys
from pathlib import Path

from aligner.errors import InputError
from aligner.markup import MarkupError, runs_from_placeholders
from service.config import ConfigError, StorePool
from service.memory.factory import open_store
from service.memory.store import MergeRule, TMStore, UnitQuery, tags_from_data
from service.memory.tm import FUZZY_FOLDER

TMX_DATE = r"\d{8}T\d{6}Z"
# New units that make the importing indexer write a segment file: it indexes while the
# import goes on (the two share the machine's cores); when it falls behind, it takes all that
# arrived meanwhile at once (up to fuzzy._FILE_BUILD units a file), so it catches up.
INDEX_BATCH = 50_000


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="concordia-tm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="the service's data folder")
    parser.add_argument("--store", default=None,
                        help="a postgresql:// URL (default $CONCORDIA_STORE, else SQLite in DIR)")
    sub = parser.add_subparsers(dest="command", required=True)
    imp = sub.add_parser(
        "import", help="import a TMX of any size (committed in chunks; run again to resume)"
    )
    imp.add_argument("file", type=Path)
    imp.add_argument("--rule", choices=[r.value for r in MergeRule], default="merge")
    exp = sub.add_parser("export", help="write units as TMX")
    exp.add_argument("-o", "--output", type=Path, help="file (default: stdout)")
    exp.add_argument("--import-id", type=int, help="one import's units, under its header")
    exp.add_argument("--document")
    show = sub.add_parser("show", help="one unit, with its version")
    show.add_argument("id", type=int)
    edit = sub.add_parser("edit", help="change a unit's segments or properties")
    edit.add_argument("id", type=int)
    edit.add_argument("--version", type=int, required=True, help="the version shown")
    edit.add_argument("--zh")
    edit.add_argument("--en")
    edit.add_argument("--prop", action="append", default=None, metavar="TYPE=VALUE",
                      help="the unit's properties, all of them (repeat); --prop '' clears")
    edit.add_argument("--changeid", default=os.environ.get("USER", ""))
    use = sub.add_parser("use", help="record that a match of a unit was used")
    use.add_argument("id", type=int)
    delete = sub.add_parser("delete", help="delete units by id or by query")
    delete.add_argument("--id", type=int, action="append", default=[])
    for name in ("document", "speaker", "origin", "contains", "since", "before"):
        delete.add_argument(f"--{name}")
    delete.add_argument("--import-id", type=int)
    imports = sub.add_parser("imports", help="the audit of the latest imports")
    imports.add_argument("--limit", type=int, default=20)
    embed = sub.add_parser(
        "embed", help="embed the units the semantic index lacks, on a Dask cluster "
        "(run again to resume)",
    )
    embed.add_argument("--encoder", default=None,
                       help="default $CONCORDIA_ENCODER, else use-m3 (the service's encoder)")
    embed.add_argument("--chunk", type=int, default=2048, help="units a task embeds")
    where = embed.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=2, help="a local cluster of N processes")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="a running Dask scheduler (tcp://HOST:PORT)")
    move = sub.add_parser(
        "migrate", help="move a data folder's memory into an empty PostgreSQL database",
        description="Copy units, tombstones, the import audit and reviews into an empty "
        "PostgreSQL database in one transaction, then compare counts and a TMX export of each "
        "as canonical XML.",
    )
    move.add_argument("--from", dest="source", type=Path, required=True, metavar="DIR")
    move.add_argument("--to", dest="target", required=True, metavar="URL")
    return parser


def _print(data) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def _props(pairs: list[str] | None) -> dict[str, str] | None:
    if pairs is None:
        return None
    props = {}
    for pair in pairs:
        if not pair:
            continue
        kind, sep, value = pair.partition("=")
        if not sep or not kind:
            raise InputError(f"--prop {pair!r}: write TYPE=VALUE")
        props[kind] = value
    return props


def run(args: argparse.Namespace, store: TMStore, data: Path) -> None:
    from service.memory.views import unit_data

    if args.command == "import":
        if not args.file.is_file():
            raise InputError(f"{args.file}: no such file")
        _print(_import(store, data, args.file, args.rule, args.store_url))
    elif args.command == "export":
        _export(args, store)
    elif args.command == "show":
        unit = store.get([args.id]).get(args.id)
        if unit is None:
            raise InputError(f"no unit {args.id}")
        _print(unit_data(unit))
    elif args.command == "edit":
        unit = store.get([args.id]).get(args.id)
        runs = {}
        for lang in ("zh", "en"):
            text = getattr(args, lang)
            if text is not None and unit is not None:
                try:
                    runs[lang] = runs_from_placeholders(text, unit.runs(lang))
                except MarkupError as exc:
                    raise InputError(f"--{lang}: {exc}") from None
        edited = store.edit(
            args.id, args.version, props=_props(args.prop), changeid=args.changeid, **runs
        )
        _print(unit_data(edited))
    elif args.command == "use":
        _print(unit_data(store.record_usage(args.id)))
    elif args.command == "delete":
        for name in ("since", "before"):
            value = getattr(args, name)
            if value is not None and not re.fullmatch(TMX_DATE, value):
                raise InputError(f"--{name} {value!r}: write a TMX date, e.g. 20170802T000000Z")
        query = UnitQuery(
            document=args.document, speaker=args.speaker, origin=args.origin,
            import_id=args.import_id, created_since=args.since, created_before=args.before,
            contains=args.contains,
        )
        deleted = store.delete(args.id) if args.id else []
        if not query.is_empty():
            deleted += store.delete_where(query)
        elif not args.id:
            raise InputError("say what to delete: --id, or at least one condition")
        _print({"deleted": len(deleted), "ids": deleted})
    elif args.command == "imports":
        _print([r.to_json() for r in store.imports(args.limit)])
    elif args.command == "embed":
        _print(_embed(args, store, data))


def _import(store: TMStore, data: Path, path: Path, rule: str, store_url: str | None) -> dict:
    """A bulk import (committed in chunks, resumed after a crash) with a progress bar; the
    fuzzy index files are written alongside, by a second process, unless a running service
    is their indexer (it then follows the import itself)."""
    from tqdm import tqdm

    done = multiprocessing.get_context("spawn").Event()
    indexer = multiprocessing.get_context("spawn").Process(
        target=_index, args=(data, store_url, done), name="concordia-indexer"
    )
    indexer.start()
    try:
        with tqdm(desc=path.name, unit=" units", unit_scale=True, disable=None) as bar:

            def progress(read: int) -> None:
                bar.update(read - bar.n)

            result = store.bulk_import_tmx(path, rule=rule, progress=progress).as_dict()
    finally:
        done.set()
        indexer.join()
    return result


def _embed(args: argparse.Namespace, store: TMStore, data: Path) -> dict:
    """``concordia-tm embed``, with a progress bar."""
    from tqdm import tqdm

    from aligner.align.embed import EncoderError
    from service.config import ConfigError, Settings
    from service.memory.embedding import embed_memory

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise InputError(str(exc)) from None
    spec = args.encoder or settings.encoder
    if spec.lower() == "none":
        raise InputError("no encoder: name one with --encoder (use-m3, st:<model>)")
    if args.scheduler is None and args.workers < 1:
        raise InputError("--workers: at least 1")
    if args.chunk < 1:
        raise InputError("--chunk: at least 1")
    with tqdm(desc="embedding", unit=" units", unit_scale=True, disable=None) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            return embed_memory(
                data, store, spec, workers=None if args.scheduler else args.workers,
                scheduler=args.scheduler, exact_below=settings.semantic_exact_below,
                chunk=args.chunk, progress=progress,
            )
        except EncoderError as exc:
            raise InputError(str(exc)) from None


def _index(data: Path, store_url: str | None, done) -> None:
    """Follow the store with the fuzzy index files until ``done``, then write the rest."""
    from service.memory.fuzzy import FuzzyIndex

    store = open_store(data, store=store_url, pool=StorePool.from_env())
    index = FuzzyIndex(data / FUZZY_FOLDER)
    try:
        index.load(store)
        while True:
            last = done.wait(1.0)
            if last or store.last_id() - index.max_id >= INDEX_BATCH:
                index.sync(store)  # files of many units at once: fewer merges
                if last or not index.is_indexer:  # a running service is the indexer
                    break
    finally:
        index.close()
        store.close()


def _export(args: argparse.Namespace, store: TMStore) -> None:
    from aligner.tmx import TmxHeader, tmx_chunks, write_tmx

    header = None
    if args.import_id is not None:
        record = store.import_record(args.import_id)
        if record is None:
            raise InputError(f"no import {args.import_id}")
        if record.header:
            h = record.header
            header = TmxHeader(h["attrs"], tags_from_data(h["extras"]), h["version"])
    units = (
        u.to_translation_unit()
        for u in store.iter_units(document=args.document, import_id=args.import_id)
    )
    if args.output:
        print(f"{write_tmx(args.output, units, header=header)} units written to {args.output}",
              file=sys.stderr)
    else:
        for chunk in tmx_chunks(units, header=header):
            sys.stdout.buffer.write(chunk)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    data = args.data or Path(os.environ.get("CONCORDIA_DATA_DIR", "").strip() or "data")
    if args.command == "migrate":
        from service.memory.move import move_memory

        try:
            report = move_memory(args.source, args.target, pool=StorePool.from_env())
        except (InputError, ConfigError) as exc:
            print(f"concordia-tm: {exc}", file=sys.stderr)
            return 2
        _print(report.as_dict())
        return 0 if report.counts_match and report.tmx_identical else 1
    store_url = args.store or os.environ.get("CONCORDIA_STORE", "").strip() or None
    try:
        store = open_store(data, store=store_url, pool=StorePool.from_env())
        args.store_url = store_url
    except (InputError, ConfigError) as exc:
        print(f"concordia-tm: {exc}", file=sys.stderr)
        return 2
    try:
        run(args, store, data)
    except (InputError, OSError) as exc:
        print(f"concordia-tm: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
