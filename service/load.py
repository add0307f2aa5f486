"""``python -m service.load --data DIR FILE.tmx…``: import TMX files into the memory in DIR.

Each file is one transaction, as ``POST /tm/import``; the indexes catch up when the service
starts. ``make run`` uses it to put the aligned sample into the embedded store.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from aligner.errors import InputError
from service.config import StorePool
from service.memory.factory import open_store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.load", description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("data"), help="the data folder")
    parser.add_argument("--store", default=os.environ.get("CONCORDIA_STORE") or None,
                        help="a postgresql:// URL (default $CONCORDIA_STORE, else SQLite)")
    parser.add_argument("files", nargs="+", type=Path, help="TMX files")
    args = parser.parse_args(argv)
    store = open_store(args.data, store=args.store, pool=StorePool.from_env())
    try:
        for path in args.files:
            try:
                result = store.import_tmx(path)
            except (InputError, OSError) as exc:
                print(f"service.load: error: {path}: {exc}", file=sys.stderr)
                return 2
            print(
                f"{path}: {result.imported} new units, {result.merged} merged, "
                f"{result.skipped} skipped; {store.count()} units in the memory"
            )
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
