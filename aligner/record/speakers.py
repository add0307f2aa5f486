"""UN names in English and Chinese: member states, organisations, bodies, roles, languages.

The table lives in ``aligner/data/un_names.tsv`` (kind, English variants, Chinese variants); this
module maps a name as printed in either version of a record to one canonical entry, so that
``里克罗夫特先生（联合王国）`` and ``Mr. Rycroft (United Kingdom)`` are seen to share a country.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

# How headings name a speaker, before the parentheses and the colon. Shared by the reader (a
# line starting with a heading always starts a paragraph) and the turn parser.
# A Chinese name: characters, hyphens (帕夫乌塔-德斯兰德斯) and middle dots in any of the forms
# extraction gives them (罗斯玛丽·迪卡洛, 罗斯玛丽 · 迪卡洛), then the title; two speakers sharing a
# seat are printed 兰道先生/沃尔兹先生.
_ZH_NAME = (
    r"(?:[\u4e00-\u9fff\-‐‑－]|\s?[·•．‧・]\s?){1,16}?"
    r"(?:先生|女士|夫人|小姐|阁下|勋爵|爵士|博士)"
)
ZH_SPEAKER = (
    r"(?:代理)?主席|[\u4e00-\u9fff·•．]{0,8}?(?:常务副秘书长|副秘书长|秘书长)"
    rf"|{_ZH_NAME}(?:\s?/\s?{_ZH_NAME})?"
)
EN_SPEAKER = (
    r"The (?:Acting )?President|The (?:Deputy )?Secretary-General"
    r"|(?:Mr|Mrs|Ms|Miss|Dr|Sir|Dame|Lord|Baroness|Sheikh|Prince|Princess|Archbishop|Cardinal"
    r"|Monsignor|Bishop|Judge)\.?\s+[^\s():,;.][^():,;]{0,60}?"
)
PAREN_ZH = r"[（(](?:[^（）()]|[（(][^（）()]*[）)])*[）)]"
PAREN_EN = r"\((?:[^()]|\([^()]*\))*\)"


@dataclass(frozen=True)
class Name:
    kind: str  # state, observer, org, body, role, language, title
    en: tuple[str, ...]
    zh: tuple[str, ...]

    @property
    def key(self) -> str:
        """The canonical (first English) name."""
        return self.en[0]


_DROP = re.compile(r"^the\s+|[\s.·•．]+")


def _normal(text: str) -> str:
    text = text.strip().replace("’", "'").replace("（", "(").replace("）", ")")
    return _DROP.sub("", text.lower())


@cache
def names() -> tuple[Name, ...]:
    """All entries of the table, in file order."""
    text = resources.files("aligner").joinpath("data/un_names.tsv").read_text(encoding="utf-8")
    rows = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        kind, en, zh = line.split("\t")
        rows.append(Name(kind, tuple(en.split("|")), tuple(zh.split("|"))))
    return tuple(rows)


@cache
def _index() -> dict[str, Name]:
    index: dict[str, Name] = {}
    for name in names():
        for variant in name.en + name.zh:
            index.setdefault(_normal(variant), name)
    return index


def lookup(text: str, kinds: tuple[str, ...] | None = None) -> Name | None:
    """The entry for ``text`` (English or Chinese, any listed variant), or None."""
    if not text:
        return None
    name = _index().get(_normal(text))
    if name is None or (kinds is not None and name.kind not in kinds):
        return None
    return name


_SPOKE_IN = re.compile(
    r"^(?:(?:spoke|speaking)\s+in|interpretation\s+from(?:\s+the)?)\s+(.+)$", re.IGNORECASE
)
_ZH_SPOKE_IN = re.compile(r"^以(.+?)发言$")


def language(text: str) -> str:
    """Canonical English name of a language of delivery ("以英语发言", "spoke in English",
    "英语", "English" → "English"); "" when not recognised."""
    text = text.strip().strip("()（）")
    m = _SPOKE_IN.match(text) or _ZH_SPOKE_IN.match(text)
    if m:
        text = m.group(1)
    name = lookup(text, ("language",))
    return name.key if name else ""


def is_language_note(text: str) -> bool:
    """Whether a parenthesis of a heading states the language of delivery."""
    text = text.strip().strip("()（）")
    return bool(_SPOKE_IN.match(text) or _ZH_SPOKE_IN.match(text))


_ENTITIES = ("state", "observer", "org", "body")


def entity(text: str) -> str:
    """Canonical English name of a state, organisation or body; "" when not in the table.

    A longer description names its entity too: "Head of the Delegation of the European Union
    to the United Nations" and "欧洲联盟驻联合国代表团团长" → "European Union" (the longest name
    of the table it holds, as a whole word in English).
    """
    name = lookup(text, _ENTITIES)
    if name is None and text:
        found = [m.group() for m in _entity_pattern().finditer(text)]
        name = lookup(max(found, key=len), _ENTITIES) if found else None
    return name.key if name else ""


@cache
def _entity_pattern() -> re.Pattern[str]:
    variants = {v for n in names() if n.kind in _ENTITIES for v in n.en + n.zh if len(v) > 1}
    alternatives = [
        rf"(?<![\w-]){re.escape(v)}(?![\w-])" if v.isascii() else re.escape(v)
        for v in sorted(variants, key=len, reverse=True)
    ]
    return re.compile("|".join(alternatives))


def role(speaker: str) -> str:
    """Canonical role of a speaker ("President", "Secretary-General"), or "" for a person."""
    name = lookup(speaker, ("role",))
    if name is not None:
        return name.key
    suffixes = [(z, e) for e in names() if e.kind == "role" for z in e.zh if speaker.endswith(z)]
    return max(suffixes, key=lambda s: len(s[0]))[1].key if suffixes else ""


_ZH_TITLE = re.compile(r"(先生|夫人|女士|小姐|爵士|勋爵|博士)$")
_EN_TITLE = re.compile(r"^(Mr|Mrs|Ms|Miss|Sir|Lord|Dr)\b\.?")


def title(speaker: str) -> str:
    """Canonical form of the title in a speaker's name ("Mr.", "Mrs.", "Ms."), or ""."""
    m = _ZH_TITLE.search(speaker) or _EN_TITLE.match(speaker)
    if not m:
        return ""
    name = lookup(m.group(1), ("title",))
    return name.key if name else ""
