"""TMX writer and reader: structure, cleaning, atomic writes, tolerant and hardened reading."""

from __future__ import annotations

import io
import re
import socket
import time
from pathlib import Path

import pytest
from lxml import etree

from aligner.align.segment import join_segments
from aligner.errors import InputError
from aligner.markup import placeholder_text
from aligner.models import SentencePair, Tag, TranslationUnit
from aligner.tmx import (
    PROP_TYPES,
    TMXError,
    check_tmx,
    clean_text,
    normalize_lang,
    pairs_to_units,
    read_tmx,
    tmx_chunks,
    write_tmx,
)

DATA = Path(__file__).parent / "data"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


@pytest.fixture(scope="module")
def tmx_dtd(shared_data: Path) -> etree.DTD:
    return etree.DTD(str(shared_data / "tmx14.dtd"))


def assert_valid(path: Path, dtd: etree.DTD) -> etree._ElementTree:
    """The file validates against the TMX 1.4 DTD and every tuv carries xml:lang."""
    tree = etree.parse(str(path), etree.XMLParser(load_dtd=False, no_network=True))
    assert dtd.validate(tree), dtd.error_log.filter_from_errors()
    for tuv in tree.iter("tuv"):
        assert tuv.get(XML_LANG), etree.tostring(tuv)
        assert tuv.get("lang") is None
    return tree


def sample_pairs() -> list[SentencePair]:
    return [
        SentencePair(
            zh="安全理事会第8017次会议。",
            en="Security Council, 8017th meeting.",
            score=0.91234,
            document="S/PV.8017",
            turn=0,
        ),
        SentencePair(
            zh=join_segments(["我感谢秘书长。", "我现在发言。"], "zh"),
            en="I thank the Secretary-General and now speak.",
            score=0.8,
            zh_indices=(1, 2),
            en_indices=(1,),
            document="S/PV.8017",
            turn=3,
            speaker="Mr. Rycroft",
            country="United Kingdom",
        ),
        SentencePair(
            zh="“恐怖分子” & <武器> 不得 ' 获取。",
            en=join_segments(['Terrorists & <weapons> "must not"', "be 'joined'."], "en"),
            score=0.5,
            document="S/PV.8017",
            turn=4,
            speaker="主席",
        ),
    ]


# ------------------------------------------------------------------------------ helpers


def test_join_segments_follows_each_language() -> None:
    assert join_segments(["我感谢主席。", " 我支持决议。 "], "zh") == "我感谢主席。我支持决议。"
    assert join_segments(["I thank you. ", " I support it."], "en-US") == (
        "I thank you. I support it."
    )
    assert join_segments(["Only one."], "zh-CN") == "Only one."
    assert join_segments(["", "  ", "一句。"], "ZH_cn") == "一句。"


def test_clean_text_removes_only_what_xml_forbids() -> None:
    keep = "a\u200eb\u200fc\u202bd\u202ce\u200bf\u00a0g\th\U0001f600i\u2028j"
    assert clean_text(keep) == keep
    dirty = "\u3000 A\x00B\x01C\x08D\x0bE\x0cF\x1fG\ufffeH\uffffI\ud800J \n"
    assert clean_text(dirty) == "ABCDEFGHIJ"


def test_normalize_lang() -> None:
    assert normalize_lang("ZH_cn") == "zh-CN"
    assert normalize_lang("zh_hans_cn") == "zh-Hans-CN"
    assert normalize_lang("EN-us") == "en-US"
    assert normalize_lang("es-419") == "es-419"


# ------------------------------------------------------------------------------ writing


def test_written_file_is_tmx14_with_provenance(tmp_path: Path, tmx_dtd: etree.DTD) -> None:
    out = tmp_path / "out" / "meeting.tmx"
    count = write_tmx(out, pairs_to_units(sample_pairs(), creationid="aligner-test"))
    assert count == 3
    tree = assert_valid(out, tmx_dtd)
    raw = out.read_bytes()
    assert raw.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE tmx')
    root = tree.getroot()
    assert root.tag == "tmx" and root.get("version") == "1.4"
    header = root.find("header")
    assert header.get("creationtool") == "Concordia"
    assert header.get("creationtoolversion")
    assert header.get("segtype") == "sentence"
    assert header.get("o-tmf") and header.get("adminlang") == "en-US"
    assert header.get("datatype") == "plaintext"
    assert re.fullmatch(r"\d{8}T\d{6}Z", header.get("creationdate"))
    assert re.search(rb'srclang="zh-CN"', raw)
    tus = root.findall("body/tu")
    assert len(tus) == 3
    for tu in tus:
        assert tu.get("creationid") == "aligner-test"
        assert tu.get("creationtool") == "Concordia"
        assert re.fullmatch(r"\d{8}T\d{6}Z", tu.get("creationdate"))
        children = [c.tag for c in tu]
        assert children[-2:] == ["tuv", "tuv"] and set(children[:-2]) == {"prop"}
        assert [t.get(XML_LANG) for t in tu.findall("tuv")] == ["zh-CN", "en-US"]
    props = [(p.get("type"), p.text) for p in tus[1].findall("prop")]
    assert props == [
        ("x-document", "S/PV.8017"),
        ("x-speaker", "Mr. Rycroft"),
        ("x-country", "United Kingdom"),
        ("x-turn", "3"),
        ("x-score", "0.8000"),
    ]
    # Empty provenance is left out, turn 0 is kept, the score has four decimals.
    assert [(p.get("type"), p.text) for p in tus[0].findall("prop")] == [
        ("x-document", "S/PV.8017"),
        ("x-turn", "0"),
        ("x-score", "0.9123"),
    ]
    segs = [s.text for s in tus[1].iter("seg")]
    assert segs == ["我感谢秘书长。我现在发言。", "I thank the Secretary-General and now speak."]


def test_special_characters_are_escaped_by_the_serializer(tmp_path: Path) -> None:
    out = tmp_path / "esc.tmx"
    write_tmx(out, pairs_to_units(sample_pairs()))
    raw = out.read_text("utf-8")
    assert "“恐怖分子” &amp; &lt;武器&gt; 不得 ' 获取。" in raw
    assert "Terrorists &amp; &lt;weapons&gt; \"must not\" be 'joined'." in raw
    back = list(read_tmx(out))
    assert back[2].source == "“恐怖分子” & <武器> 不得 ' 获取。"
    assert back[2].target == "Terrorists & <weapons> \"must not\" be 'joined'."


def test_srclang_is_byte_identical_to_the_source_tuv(tmp_path: Path, tmx_dtd: etree.DTD) -> None:
    out = tmp_path / "en-zh.tmx"
    units = pairs_to_units(sample_pairs(), source_lang="en_gb", target_lang="ZH_hans")
    assert write_tmx(out, units, source_lang="EN_GB", target_lang="zh-hans") == 3
    raw = out.read_bytes()
    assert b'srclang="en-GB"' in raw
    assert raw.count(b'<tuv xml:lang="en-GB">') == 3
    assert raw.count(b'<tuv xml:lang="zh-Hans">') == 3
    tree = assert_valid(out, tmx_dtd)
    first = tree.find("body/tu")
    assert [s.text for s in first.iter("seg")] == [
        "Security Council, 8017th meeting.",
        "安全理事会第8017次会议。",
    ]


def test_segments_are_cleaned_and_empty_units_skipped(tmp_path: Path, tmx_dtd: etree.DTD) -> None:
    units = [
        TranslationUnit(" \t联合国\x00大会\u200f。\n", "\x07General\u200e Assembly. ", props={}),
        TranslationUnit("只有中文。", " \x0b ", props={"x-score": "0.1"}),
        TranslationUnit("第二句。", "Second.", props={"x-speaker": " \x1b ", "x-turn": "7"}),
    ]
    out = tmp_path / "clean.tmx"
    assert write_tmx(out, iter(units)) == 2
    tree = assert_valid(out, tmx_dtd)
    segs = [s.text for s in tree.iter("seg")]
    assert segs == ["联合国大会\u200f。", "General\u200e Assembly.", "第二句。", "Second."]
    assert [p.get("type") for p in tree.iter("prop")] == ["x-turn"]


def test_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    out = tmp_path / "memory.tmx"
    out.write_text("previous contents", "utf-8")

    def units():
        yield from pairs_to_units(sample_pairs())
        raise RuntimeError("aligner crashed half-way")

    with pytest.raises(RuntimeError, match="half-way"):
        write_tmx(out, units())
    assert out.read_text("utf-8") == "previous contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["memory.tmx"]
    (tmp_path / "folder.tmx").mkdir()
    with pytest.raises(IsADirectoryError):
        write_tmx(tmp_path / "folder.tmx", pairs_to_units(sample_pairs()))
    (tmp_path / "folder.tmx").rmdir()

    mismatched = [TranslationUnit("Un.", "One.", source_lang="fr-FR")]
    with pytest.raises(TMXError, match="fr-FR→en-US but the file is zh-CN→en-US"):
        write_tmx(tmp_path / "new.tmx", mismatched)
    bad_date = [TranslationUnit("一。", "One.", creationdate="2015-03-01")]
    with pytest.raises(InputError, match="YYYYMMDDThhmmssZ"):
        write_tmx(tmp_path / "new.tmx", bad_date)
    with pytest.raises(TMXError, match="not a language code"):
        write_tmx(tmp_path / "new.tmx", [], source_lang="zh CN")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["memory.tmx"]


def test_written_file_has_normal_permissions(tmp_path: Path) -> None:
    out = tmp_path / "perm.tmx"
    write_tmx(out, pairs_to_units(sample_pairs()))
    assert out.stat().st_mode & 0o044 == 0o044  # readable by others, like any new file


def test_pairs_to_units_sides_and_errors() -> None:
    units = list(pairs_to_units(sample_pairs(), source_lang="en-US", target_lang="zh-CN"))
    assert units[0].source == "Security Council, 8017th meeting."
    assert units[0].target == "安全理事会第8017次会议。"
    assert (units[0].source_lang, units[0].target_lang) == ("en-US", "zh-CN")
    assert list(units[2].props) == ["x-document", "x-speaker", "x-turn", "x-score"]
    pair = SentencePair(zh="一。", en="One.", score=1.0)
    assert list(pairs_to_units([pair], document="A/69/1"))[0].props == {
        "x-document": "A/69/1",
        "x-score": "1.0000",
    }
    with pytest.raises(TMXError, match="neither Chinese"):
        pairs_to_units([pair], target_lang="fr-FR")  # checked at the call, not on first use
    assert set(PROP_TYPES) == {
        "x-document", "x-speaker", "x-country", "x-turn", "x-score", "x-kind"
    }


# ------------------------------------------------------------------------------ reading


def test_reads_omegat_level1_with_lang_attribute() -> None:
    units = list(read_tmx(DATA / "tmx_omegat_level1.tmx"))
    assert [(u.source_lang, u.target_lang) for u in units] == [("zh-CN", "en-US")] * 3
    assert units[0].source == "第六十九届会议" and units[0].target == "Sixty-ninth session"
    assert units[2].source == "议程项目 <13> & 115"
    assert units[2].target == "Agenda items <13> & 115"
    assert units[2].props == {"file": "A_69_1.txt", "prev": "第六十九届会议"}


def test_reads_trados_export_with_bom_and_inline_codes(caplog: pytest.LogCaptureFixture) -> None:
    units = list(read_tmx(DATA / "tmx_trados_bom.tmx"))
    assert len(units) == 2  # the third unit has an empty Chinese segment
    assert "skipped 1 of 3 units" in caplog.text
    assert units[0].source == "The Security Council strongly condemns all acts of terrorism."
    assert units[0].target == "安全理事会强烈谴责一切恐怖主义行为。"
    assert units[0].creationid == "UNOG\\translator"
    assert units[0].creationdate == "20150312T083512Z"
    assert units[0].props["x-Context"] == "0, 0"
    assert units[1].source == "See resolution 2370 (2017)."
    # The caller picks the direction by primary language subtag.
    flipped = list(read_tmx((DATA / "tmx_trados_bom.tmx").open("rb"), source_lang="zh"))
    assert flipped[1].source == "见第2370（2017）号决议。"
    assert (flipped[1].source_lang, flipped[1].target_lang) == ("zh-CN", "en-US")


def test_reads_utf16_multilingual_srclang_all(caplog: pytest.LogCaptureFixture) -> None:
    path = DATA / "tmx_multilingual_utf16.tmx"
    assert path.read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff")
    units = list(read_tmx(path, source_lang="zh-CN", target_lang="en"))
    # Inline codes are markup, not text: the plain text leaves them out, placeholders show them.
    assert [u.source for u in units] == [
        "变革我们的世界：2030年可持续发展议程",
        "不让任何一个人掉队",
    ]
    assert units[0].target == "Transforming our world: the 2030 Agenda"
    shown = placeholder_text(units[0].target_runs)
    assert shown == "Transforming {1}our world{/1}:{2/} the 2030 Agenda"
    assert placeholder_text(units[0].source_runs) == "变革我们的世界：{1}2030年{/1}可持续发展议程"
    assert units[0].target_runs[1] == Tag("bpt", {"i": "1"}, ["<b>"])
    assert placeholder_text(units[1].source_runs) == "{1/}不让任何一个人掉队"
    assert units[1].target == "Leave no one behind"
    assert {(u.source_lang, u.target_lang) for u in units} == {("zh-CN", "en-GB")}
    assert units[0].props == {"x-document": "A/RES/70/1"}
    assert "skipped 1 of 3 units: a requested language missing or empty" in caplog.text
    taiwan = list(read_tmx(path, source_lang="ZH_tw", target_lang="en"))
    assert taiwan[0].source == "變革我們的世界" and taiwan[0].source_lang == "zh-TW"
    # srclang="*all*" and no wish: the first tuv is the source, the next other language the target.
    default = list(read_tmx(path))
    assert [(u.source_lang, u.target_lang) for u in default] == [
        ("fr-FR", "en-GB"),
        ("en-GB", "zh-CN"),
        ("fr-FR", "en-GB"),
    ]


def test_billion_laughs_is_refused_quickly() -> None:
    start = time.perf_counter()
    with pytest.raises(TMXError, match="declares XML entities"):
        list(read_tmx(DATA / "tmx_billion_laughs.tmx"))
    assert time.perf_counter() - start < 1.0


def test_xxe_and_parameter_entities_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET", "utf-8")
    evil_dtd = tmp_path / "evil.dtd"
    evil_dtd.write_text('<!ENTITY leak SYSTEM "file://' + str(secret) + '">', "utf-8")
    bodies = [
        f'<!DOCTYPE tmx [<!ENTITY xxe SYSTEM "file://{secret}">]>',
        f'<!DOCTYPE tmx [<!ENTITY % ext SYSTEM "file://{evil_dtd}"> %ext;]>',
    ]
    for doctype in bodies:
        data = (
            f'<?xml version="1.0"?>\n{doctype}\n<tmx version="1.4"><header srclang="en"/>'
            '<body><tu><tuv xml:lang="en"><seg>&xxe;&leak;</seg></tuv>'
            '<tuv xml:lang="zh"><seg>中</seg></tuv></tu></body></tmx>'
        ).encode()
        with pytest.raises(TMXError, match="declares XML entities") as caught:
            list(read_tmx(io.BytesIO(data)))
        assert "TOP-SECRET" not in str(caught.value)


def _tmx_with_prolog(prolog: str, units: int = 1) -> str:
    body = "".join(
        f'<tu><tuv xml:lang="en"><seg>Peace {i}</seg></tuv><tuv xml:lang="zh"><seg>和平{i}</seg>'
        "</tuv></tu>"
        for i in range(units)
    )
    return f'{prolog}<tmx version="1.4"><header srclang="en"/><body>{body}</body></tmx>'


class _ReadOnly(io.RawIOBase):
    """A stream that can only be read, as a network upload is: no seek."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32"])
def test_billion_laughs_is_refused_in_our_words_in_any_encoding(
    tmp_path: Path, encoding: str
) -> None:
    """Our own scan of the prolog refuses it, whatever libxml2 would have said."""
    text = (DATA / "tmx_billion_laughs.tmx").read_text("utf-8")
    text = text.replace('encoding="UTF-8"', f'encoding="{encoding.removesuffix("-sig")}"')
    path = tmp_path / "laughs.tmx"
    path.write_bytes(text.encode(encoding))
    expected = "laughs.tmx: refused: the file declares XML entities or a DTD of its own"
    with pytest.raises(TMXError, match=expected):
        check_tmx(path, "laughs.tmx")
    with pytest.raises(TMXError, match=expected.replace("laughs.tmx", "<stream>")):
        list(read_tmx(io.BufferedReader(_ReadOnly(path.read_bytes()))))


def test_any_internal_dtd_subset_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "subset.tmx"
    # no entity at all, and the subset opened after a comment and a PI
    prolog = '<?xml version="1.0"?><!-- a --><?pi x?><!DOCTYPE tmx [<!ELEMENT a ANY>]>'
    path.write_text(_tmx_with_prolog(prolog), "utf-8")
    with pytest.raises(TMXError, match="declares XML entities or a DTD of its own"):
        check_tmx(path)
    with pytest.raises(TMXError, match="declares XML entities or a DTD of its own"):
        list(read_tmx(path))


def test_prolog_without_a_subset_reads_from_any_stream(tmp_path: Path) -> None:
    """Brackets in comments, PIs and the DOCTYPE's literals are no subset; a stream that
    cannot seek gets the prolog bytes again, and a file past the scan's blocks reads whole."""
    prolog = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<!-- [not a subset] -->\n<?x [y]?>\n'
        '<!DOCTYPE tmx PUBLIC "-//x//EN" \'tmx14[1].dtd\'>\n'
    )
    data = _tmx_with_prolog(prolog, units=2000).encode("utf-8")
    assert len(data) > 1 << 17
    path = tmp_path / "fine.tmx"
    path.write_bytes(data)
    check_tmx(path)
    for source in (path, io.BytesIO(data), io.BufferedReader(_ReadOnly(data), 7)):
        units = list(read_tmx(source))
        assert len(units) == 2000
        assert (units[0].source, units[-1].target) == ("Peace 0", "和平1999")


def test_a_prolog_past_one_mebibyte_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "long.tmx"
    path.write_text(_tmx_with_prolog("<!--" + "x" * (1 << 20) + "-->"), "utf-8")
    with pytest.raises(TMXError, match="over 1,048,576 bytes before the root element"):
        check_tmx(path)
    with pytest.raises(TMXError, match="over 1,048,576 bytes before the root element"):
        list(read_tmx(path))


def test_external_dtd_is_never_fetched(tmp_path: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.setblocking(False)
        port = server.getsockname()[1]
        path = tmp_path / "remote-dtd.tmx"
        path.write_text(
            f'<?xml version="1.0"?>\n<!DOCTYPE tmx SYSTEM "http://127.0.0.1:{port}/tmx14.dtd">\n'
            '<tmx version="1.4"><header srclang="en-US"/><body><tu>'
            '<tuv xml:lang="en-US"><seg>Peace</seg></tuv><tuv xml:lang="zh-CN"><seg>和平</seg>'
            "</tuv></tu></body></tmx>",
            "utf-8",
        )
        units = list(read_tmx(path))
        assert [(u.source, u.target) for u in units] == [("Peace", "和平")]
        with pytest.raises(BlockingIOError):
            server.accept()


def test_undefined_entity_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "nbsp.tmx"
    path.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE tmx SYSTEM "tmx14.dtd">\n'
        '<tmx version="1.4"><header srclang="en"/><body>\n<tu><tuv xml:lang="en">'
        '<seg>a&nbsp;b</seg></tuv><tuv xml:lang="zh"><seg>甲</seg></tuv></tu></body></tmx>',
        "utf-8",
    )
    with pytest.raises(TMXError, match=r"line 4: undefined entity &nbsp;"):
        list(read_tmx(path))
    path.write_text(path.read_text("utf-8").replace('<!DOCTYPE tmx SYSTEM "tmx14.dtd">', ""))
    with pytest.raises(TMXError, match=r"line 4, column \d+: Entity 'nbsp' not defined"):
        list(read_tmx(path))


def test_malformed_file_reports_line_and_column() -> None:
    with pytest.raises(TMXError) as caught:
        list(read_tmx(DATA / "tmx_malformed.tmx"))
    message = str(caught.value)
    assert message.startswith(str(DATA / "tmx_malformed.tmx") + ": malformed TMX at line 6,")
    assert re.search(r"line 6, column 45: Opening and ending tag mismatch: seg", message)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", r"<stream>: malformed TMX: .*empty or truncated"),
        (b"%PDF-1.4\n\x00\x01", r"at line 1, column 1: Start tag expected"),
        (b'<?xml version="1.0"?>\n<tmx>\n<header/>\n<body><tu>', r"at line 4, column 11"),
        (b"<html><body><p>hello</p></body></html>", r"not a TMX file \(root element is <html>"),
        (b"<html><header/></html>", r"not a TMX file \(root element is <html>"),
        (b'<tmx><body><tu><tuv xml:lang="en"/></tu></body></tmx>', r"<tuv> without <seg>"),
    ],
)
def test_bad_input_is_a_clear_error(data: bytes, expected: str) -> None:
    with pytest.raises(TMXError, match=expected):
        list(read_tmx(io.BytesIO(data)))


def test_missing_file_is_reported_before_iteration(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_tmx(tmp_path / "absent.tmx")
    with pytest.raises(IsADirectoryError):
        read_tmx(tmp_path)


def test_reader_streams_units_before_the_end_of_the_file(tmp_path: Path) -> None:
    out = tmp_path / "many.tmx"
    pairs = [SentencePair(zh=f"第{i}句。", en=f"Sentence {i}.", score=0.9) for i in range(3000)]
    assert write_tmx(out, pairs_to_units(pairs)) == 3000
    truncated = tmp_path / "truncated.tmx"
    raw = out.read_bytes()
    truncated.write_bytes(raw[: len(raw) * 2 // 3])
    units = read_tmx(truncated)
    first = next(units)
    assert (first.source, first.target) == ("第0句。", "Sentence 0.")
    seen = 1
    with pytest.raises(TMXError, match="malformed TMX at line"):
        for unit in units:
            assert unit.source == f"第{seen}句。"
            seen += 1
    assert 1800 < seen < 2100  # about two thirds of the units came out before the error
    assert [u.target for u in read_tmx(out)][-1] == "Sentence 2999."


def test_chunks_are_the_file_and_come_before_the_units_run_out(tmp_path, shared_data, monkeypatch):
    monkeypatch.setattr("aligner.tmx.tmx_date", lambda when=None: "20261126T120000Z")
    zh = (shared_data / "unpc-dev" / "zh.txt").read_text(encoding="utf-8").splitlines()
    en = (shared_data / "unpc-dev" / "en.txt").read_text(encoding="utf-8").splitlines()
    units = [TranslationUnit(z, e, props={"x-doc": "UNPC"}) for z, e in zip(zh, en, strict=True)]
    taken = []

    def arriving():
        for unit in units:
            taken.append(unit)
            yield unit

    chunks = tmx_chunks(arriving(), size=4096)
    first = next(chunks)
    assert len(first) >= 4096 and len(taken) < len(units) // 10  # sent while units still come
    streamed = first + b"".join(chunks)
    assert len(taken) == len(units)
    write_tmx(tmp_path / "whole.tmx", units)
    assert streamed == (tmp_path / "whole.tmx").read_bytes()
