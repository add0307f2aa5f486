"""The reader does not depend on where lines and pages fall (issue 19).

Every record of the shared data (text and PDF), in each language it has, is laid out again by
``tests/rewrap.py`` in layouts hypothesis draws (line width, page breaks with the record's
running header and footer, blank lines); the headings, language notes and sentences read
from every layout must be those read from the record as published. bench/record_bench.py runs
the same property over 500 seeded layouts per record and language.
"""

from functools import cache

import pytest
import rewrap
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from aligner.read.ingest import read_document

# Every record of ../shared/data/un, with how many layouts to draw (the long PDFs take about
# half a second a layout).
RECORDS = {
    "S-PV-10124.part1.zh.txt": 40,
    "S-PV-10124.part1.en.txt": 40,
    "S-PV-10100.zh.txt": 40,
    "S-PV-10100.en.txt": 40,
    "S-PV-8017.zh.txt": 25,
    "S-PV-8422.en.pdf": 12,
    "S-PV-3756.en.pdf": 12,
    "A-79-PV-29.en.pdf": 6,
}


@cache
def published(path: str):
    doc = read_document(path)
    return doc, rewrap.sentences_of(doc), rewrap.furniture_of(doc.removed, doc.symbol)


def layouts(lang: str):
    low, high = (18, 45) if lang == "zh" else (55, 100)
    return st.builds(
        rewrap.Layout,
        width=st.integers(low, high),
        breaks=st.lists(st.floats(0, 1), max_size=4).map(lambda b: tuple(sorted(b))),
        blanks=st.sampled_from(["none", "every", "paragraphs"]),
        seed=st.integers(0, 1 << 30),
    )


def test_every_record_is_checked(shared_data):
    assert sorted(RECORDS) == sorted(p.name for p in (shared_data / "un").iterdir())


@pytest.mark.parametrize(("name", "examples"), RECORDS.items())
def test_sentences_survive_any_layout(shared_data, name, examples):
    lang = "zh" if ".zh." in name else "en"
    doc, expected, furniture = published(str(shared_data / "un" / name))

    @settings(max_examples=examples, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(layouts(lang))
    def check(layout):
        text = rewrap.relayout(doc.paragraphs, lang, furniture, layout)
        assume(text is not None)
        assert rewrap.sentences(text, lang) == expected

    check()


def test_layouts_really_move_lines(shared_data):
    """The property is not empty: layouts differ from the record and from each other, and
    most widths are drawn."""
    doc, expected, furniture = published(str(shared_data / "un" / "S-PV-10100.zh.txt"))

    def lay(width, breaks, blanks):
        return rewrap.relayout(doc.paragraphs, "zh", furniture,
                               rewrap.Layout(width, breaks, blanks, 1))

    drawn = [w for w in range(18, 46) if lay(w, (), "none") is not None]
    assert len(drawn) >= 12
    narrow, wide = lay(drawn[0], (0.5,), "every"), lay(drawn[-1], (), "none")
    original = (shared_data / "un" / "S-PV-10100.zh.txt").read_text(encoding="utf-8")
    assert len({narrow, wide, original}) == 3
    assert furniture[0] in narrow and furniture[0] not in wide
    assert "" in narrow.splitlines() and "" not in wide.splitlines()
    assert rewrap.sentences(narrow, "zh") == rewrap.sentences(wide, "zh") == expected
