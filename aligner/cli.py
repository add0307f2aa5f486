"""Command line: ``aligner align|eval|turns|batch|serve|review``.

Each subcommand lives beside the code it drives; a module contributes its subcommand with
``add_command(subparsers)`` and sets ``func`` to a callable taking the parsed arguments and
returning an exit status.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from aligner import __version__
from aligner.errors import TextLostError

COMMAND_MODULES = (
    "aligner.commands",  # align, serve
    "aligner.align.evaluate",  # eval
    "aligner.record.turns",  # turns
    "aligner.batch",  # batch
    "aligner.review_cmd",  # review
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aligner", description="Chinese ↔ English alignment for UN documents"
    )
    parser.add_argument("--version", action="version", version=f"concordia {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        module.add_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # the reader went away (``aligner turns FILE | head``): stop quietly
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("aligner: interrupted", file=sys.stderr)
        return 130
    except TextLostError as exc:
        # A bug, not the user's input: say so in one line, with what to send.
        print(
            f"aligner: internal error: {exc}; nothing was written. Please report it with "
            "the input files (-v for details).",
            file=sys.stderr,
        )
        if args.verbose:
            raise
        return 3
    except Exception as exc:  # noqa: BLE001 - every failure becomes one clear line
        from aligner.errors import describe

        message = describe(exc)
        if message is None:
            raise
        print(f"aligner: error: {message}", file=sys.stderr)
        return 2
