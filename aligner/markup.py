"""Segments as runs of text and inline tags, and the views derived from them.

A segment read from a TMX keeps its inline markup as data: a list of runs, each a ``str`` of
text or a :class:`~aligner.models.Tag` (``bpt``/``ept``/``it``/``ph``/``ut`` holding native
code, ``hi`` holding segment text, ``sub`` holding a sub-flow inside native code). Everything
else is derived from the runs:

- :func:`plain_text`: the words of the segment, tags left out (``hi`` keeps its text): what
  indexes, hashes and fuzzy scores work on, so markup never lowers a match;
- :func:`placeholder_text`: the text with every tag as a numbered placeholder, ``{1}``…``{/1}``
  for a pair (``bpt``/``ept``, ``hi``, ``it`` begin/end), ``{2/}`` for a standalone code
  (``ph``, ``ut``, an ``it`` that does not say), as CAT tools show tags to translators;
- :func:`runs_to_data` / :func:`runs_from_data`: a JSON-ready form for storage.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from aligner.models import Run, Tag

CODE_TAGS = frozenset({"bpt", "ept", "it", "ph", "ut"})
INLINE_TAGS = CODE_TAGS | {"hi", "sub"}
PLACEHOLDER = re.compile(r"\{/?\d+/?\}")


class MarkupError(ValueError):
    """Inline markup that cannot be right: a ``bpt`` without its ``ept`` and the like."""


def has_markup(runs: list[Run] | None) -> bool:
    return bool(runs) and any(isinstance(r, Tag) for r in runs)


def plain_text(runs: list[Run]) -> str:
    """The segment's own text: text runs and the text inside ``hi``; native code and
    ``sub`` flows left out."""
    return "".join(_plain(runs))


def _plain(runs: list[Run]) -> Iterator[str]:
    for run in runs:
        if isinstance(run, str):
            yield run
        elif run.name == "hi":
            yield from _plain(run.content)


def placeholder_text(runs: list[Run]) -> str:
    """The text with each tag as a numbered placeholder (``{1}``, ``{/1}``, ``{2/}``)."""
    out: list[str] = []
    numbers: dict[str, int] = {}  # bpt i → its number, for the matching ept
    count = [0]

    def walk(items: list[Run]) -> None:
        for run in items:
            if isinstance(run, str):
                out.append(run)
                continue
            if run.name == "ept":
                number = numbers.get(run.attrs.get("i", ""))
                if number is None:
                    count[0] += 1
                    number = count[0]
                out.append(f"{{/{number}}}")
                continue
            count[0] += 1
            number = count[0]
            if run.name == "bpt":
                numbers[run.attrs.get("i", "")] = number
                out.append(f"{{{number}}}")
            elif run.name == "hi":
                out.append(f"{{{number}}}")
                walk(run.content)
                out.append(f"{{/{number}}}")
            elif run.name == "it" and run.attrs.get("pos") == "begin":
                out.append(f"{{{number}}}")
            elif run.name == "it" and run.attrs.get("pos") == "end":
                out.append(f"{{/{number}}}")
            else:
                out.append(f"{{{number}/}}")

    walk(runs)
    return "".join(out)


def strip_placeholders(text: str) -> str:
    """A query written with numbered placeholders, as plain text."""
    return PLACEHOLDER.sub("", text)


def check_pairing(runs: list[Run]) -> None:
    """Raise MarkupError unless every ``bpt`` has one ``ept`` with its ``i`` after it and
    every ``ept`` one ``bpt`` before it, in the same segment."""
    open_: dict[str, int] = {}
    for tag in _tags(runs):
        if tag.name == "bpt":
            i = tag.attrs.get("i", "")
            if not i:
                raise MarkupError("a <bpt> without its i attribute")
            if i in open_:
                raise MarkupError(f'two <bpt i="{i}"> open at once')
            open_[i] = 1
        elif tag.name == "ept":
            i = tag.attrs.get("i", "")
            if i not in open_:
                raise MarkupError(f'an <ept i="{i}"> with no <bpt i="{i}"> before it')
            del open_[i]
    if open_:
        i = next(iter(open_))
        raise MarkupError(f'a <bpt i="{i}"> with no <ept i="{i}"> after it')


def _tags(runs: list[Run]) -> Iterator[Tag]:
    """The tags of the segment's own flow, in order (``hi`` content included)."""
    for run in runs:
        if isinstance(run, Tag):
            yield run
            if run.name == "hi":
                yield from _tags(run.content)


def runs_to_data(runs: list[Run]) -> list:
    """JSON-ready runs: a string stays, a tag becomes ``[name, attrs, content]``."""
    return [r if isinstance(r, str) else [r.name, r.attrs, runs_to_data(r.content)] for r in runs]


def runs_from_data(data: list) -> list[Run]:
    return [
        r if isinstance(r, str) else Tag(r[0], dict(r[1]), runs_from_data(r[2])) for r in data
    ]


def runs_from_placeholders(text: str, template: list[Run]) -> list[Run]:
    """Runs from a segment edited as placeholder text, the tags taken from ``template`` (the
    runs it was shown from): ``{n}``, ``{/n}``, ``{n/}`` stand for the template's tags as
    ``placeholder_text`` numbered them. A placeholder the template lacks, a ``hi`` left open
    or tags that no longer pair raise MarkupError. Tags may be left out."""
    shown = _placeholder_tags(template)
    out: list[Run] = []
    stack: list[tuple[str, Tag, list[Run]]] = []
    last = 0
    for m in PLACEHOLDER.finditer(text):
        target = stack[-1][2] if stack else out
        if m.start() > last:
            target.append(text[last : m.start()])
        last = m.end()
        mark = m.group(0)
        tag = shown.get(mark)
        if tag is None:
            raise MarkupError(f"{mark} is not a tag of this segment")
        if tag.name == "hi" and not mark.startswith("{/"):
            stack.append((mark, tag, []))
        elif tag.name == "hi":
            if not stack or stack[-1][1] is not tag:
                raise MarkupError(f"{mark} closes a tag that is not open")
            _, opened, content = stack.pop()
            (stack[-1][2] if stack else out).append(Tag("hi", opened.attrs, content))
        else:
            target.append(tag)
    if stack:
        raise MarkupError(f"{stack[-1][0]} is never closed")
    if last < len(text):
        out.append(text[last:])
    check_pairing(out)
    return out


def _placeholder_tags(runs: list[Run]) -> dict[str, Tag]:
    """Placeholder → tag, numbered as ``placeholder_text`` numbers them."""
    marks = PLACEHOLDER.findall(placeholder_text(runs))
    tags: list[Tag] = []

    def walk(items: list[Run]) -> None:
        for run in items:
            if isinstance(run, Tag):
                tags.append(run)
                if run.name == "hi":
                    walk(run.content)
                    tags.append(run)  # its closing placeholder

    walk(runs)
    return dict(zip(marks, tags, strict=True))
