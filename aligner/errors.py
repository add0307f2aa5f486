"""Errors a user can act on, and how the command line reports them."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input (unreadable, empty, wrong kind, wrong language): reported as one clear line."""


class InputTooLarge(InputError):
    """Input over a limit on what reading it may cost (expanded size, parts, pages, length)."""


class TextLostError(RuntimeError):
    """A reader or cutter lost or invented text: a bug in the program, never the user's input."""


def describe(exc: BaseException) -> str | None:
    """The one-line message for an error the user can act on, or None for a real bug."""
    from aligner.align.embed import EncoderError

    if isinstance(exc, InputError | EncoderError):
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        return f"no such file: {exc.filename}"
    if isinstance(exc, IsADirectoryError):
        return f"is a directory, not a file: {exc.filename}"
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename}"
    return None
