"""Reading records: the real Chinese PDF text, English in the forms users have it, bad files."""

import re
from pathlib import Path

import docx
import pytest

from aligner.align.segment import split_sentences
from aligner.errors import InputError, TextLostError
from aligner.read.ingest import (
    check_lossless,
    detect_language,
    read_bytes,
    read_document,
    symbol_from_name,
)
from aligner.record.turns import parse_turns

DATA = Path(__file__).parent / "data"
EN = DATA / "record_8017_excerpt.en.txt"
ZH = DATA / "record_8017_excerpt.zh.txt"
# A speaker heading after the first sentence of a paragraph: two speakers joined.
HEADING_INSIDE = re.compile(
    r"[。！？”）]\s*(?:主席|[\u4e00-\u9fff·•]{1,12}?(?:先生|女士|夫人))(?:（[^（）]*）)*："
)


@pytest.fixture(scope="module")
def record(shared_data):
    return read_document(shared_data / "un" / "S-PV-8017.zh.txt")


def test_real_chinese_record_is_reflowed_into_paragraphs(record):
    assert record.lang == "zh"
    assert record.symbol == "S/PV.8017"
    paras = record.paragraphs
    # A speaker heading cut across two printed lines is joined to its text.
    assert any(p.startswith("萨迪科夫先生（哈萨克斯坦）（以英语发言）：首先，我要") for p in paras)
    assert any(p.startswith("罗塞利先生（乌拉圭）（以西班牙语发言）：首先，我要") for p in paras)
    # A heading printed alone on its line keeps its text.
    assert any(p.startswith("内边贾先生（俄罗斯联邦）（以俄语发言）：主席先生") for p in paras)
    # Paragraph ends that are not marked: a full last line, a first line ending in 。.
    assert (
        "没有比恐怖主义这一无情祸害更大的挑战了。"
        "它是我们所有人面临的威胁，我们所有人都必须团结起来打败它。"
    ) in paras
    assert any(p.startswith("访问各国仍然是反恐执行局的一个关键工具。它使我们") for p in paras)
    assert any(p.endswith("技术援助工具和能力建设；促进和推动国际合作和信息交流。") for p in paras)
    assert "上午10时10分开会。" == paras[0] and "中午12时15分散会。" == paras[-1]


def test_real_record_spaces_and_line_joins(record):
    text = "\n".join(record.paragraphs)
    assert "\u2004" not in text
    assert not re.search(r"[\u4e00-\u9fff，。] |[^\sA-Za-z] [\u4e00-\u9fff]", text)
    assert "安全理事会第1540(2004)号决议所设委员会" in text  # was "第1540  (2004)号"
    assert "安全理事会主席声明S/PRST/2015/24授权" in text  # was cut after "S/"
    assert "（见S/PV.7951）" in text
    assert "Vasily Nebenzya大使" in text  # the space between two Latin words stays


def test_no_paragraph_joins_two_speakers(record):
    joined = "我感谢鲁先生的通报。" + "里克罗夫特先生（联合王国）（以英语发言）：我愿首先"
    assert HEADING_INSIDE.search(joined) and HEADING_INSIDE.search("议程。陈伟雄先生：今天")
    for paragraph in record.paragraphs:
        assert not HEADING_INSIDE.search(paragraph), paragraph[:40]


def test_no_chinese_sentence_cut_inside_a_number_or_symbol(record):
    token = re.compile(r"[A-Z]{1,2}/[A-Z0-9./]*\d|\d[\d.,/]*(?:[(（]\d{4}[)）])?")
    checked = 0
    for paragraph in record.paragraphs:
        sentences = split_sentences(paragraph, "zh")
        assert "".join(sentences).replace(" ", "") == paragraph.replace(" ", "")
        for sentence in sentences[:-1]:
            assert re.search(r"[。！？][”’）》]*$", sentence), sentence
        for m in token.finditer(paragraph):
            assert any(m.group() in s for s in sentences), m.group()
            checked += 1
    assert checked > 100


def test_english_one_paragraph_per_line():
    doc = read_document(EN)
    lines = EN.read_text(encoding="utf-8").splitlines()
    assert doc.lang == "en" and doc.paragraphs == lines


def wrap(paragraph: str, width: int) -> list[str]:
    """Greedy wrap as a printed column: long words hyphenated at the line end."""
    lines, line = [], ""
    for word in paragraph.split():
        if not line:
            line = word
        elif len(line) + 1 + len(word) <= width:
            line += " " + word
        elif "-" in word[: width - len(line) - 1]:
            cut = word.rindex("-", 0, width - len(line) - 1) + 1
            lines.append(f"{line} {word[:cut]}")
            line = word[cut:]
        elif word.isalpha() and len(word) >= 8 and width - len(line) - 2 >= 4:
            cut = width - len(line) - 2
            lines.append(f"{line} {word[:cut]}-")
            line = word[cut:]
        else:
            lines.append(line)
            line = word
    return lines + [line]


def as_pdf_text(paragraphs: list[str], width: int = 48, page: int = 30) -> str:
    """English record text as copied out of a PDF: wrapped, hyphenated, with page furniture."""
    body = [line for p in paragraphs for line in wrap(p, width)]
    out = []
    for n, start in enumerate(range(0, len(body), page), start=2):
        if n % 2:
            out.append("S/PV.8017 Threats to international peace and security 02/08/2017")
        else:
            out.append("02/08/2017 Threats to international peace and security S/PV.8017")
        out.extend(body[start : start + page])
        out.append(f"{n}/26 17-24158" if n % 2 else f"17-24158 {n}/26")
    return "\n".join(out) + "\n"


def turn_sentences(doc):
    return [
        (t.kind, t.speaker, t.country, t.language,
         [s for p in t.paragraphs for s in split_sentences(p, "en")])
        for t in parse_turns(doc)
    ]


def test_english_pdf_text_with_wrapping_hyphens_and_furniture():
    clean = read_document(EN)
    text = as_pdf_text(clean.paragraphs)
    assert "organi-\n" in text or "-\n" in text  # the generator did hyphenate
    assert "Counter-\n" in text or "Officer-in-\n" in text or "counter-\n" in text
    doc = read_bytes(text.encode(), "S-PV-8017.en.txt")
    assert doc.symbol == "S/PV.8017"
    assert not any(re.search(r"17-24158|\d+/26|02/08/2017", p) for p in doc.paragraphs)
    assert turn_sentences(doc) == turn_sentences(clean)
    # Paragraph breaks at short lines ending a sentence; a break hidden by a full last line
    # can only join paragraphs of the same turn.
    assert len(doc.paragraphs) >= 0.8 * len(clean.paragraphs)


def _pdf(paragraphs: list[str], path: Path, font: str, header: str) -> None:
    """Typeset paragraphs into a PDF with a running header and footer (reportlab, test-only)."""
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import Paragraph, SimpleDocTemplate

    if font == "STSong-Light":
        pdfmetrics.registerFont(UnicodeCIDFont(font))
    style = ParagraphStyle(
        "body", fontName=font, fontSize=10, leading=13, firstLineIndent=20,
        wordWrap="CJK" if font == "STSong-Light" else None,
    )

    def furniture(canvas, document):
        canvas.setFont(font, 8)
        canvas.drawString(72, 800, header)
        canvas.drawString(72, 30, f"{document.page}/26")
        canvas.drawString(400, 30, "17-24158")

    SimpleDocTemplate(str(path)).build(
        [Paragraph(p.replace("&", "&amp;").replace("<", "&lt;"), style) for p in paragraphs],
        onFirstPage=furniture,
        onLaterPages=furniture,
    )


def test_english_pdf(tmp_path):
    clean = read_document(EN)
    path = tmp_path / "S-PV-8017.en.pdf"
    _pdf(clean.paragraphs, path, "Helvetica", "S/PV.8017 Threats to international peace 02/08/2017")
    doc = read_document(path)
    assert doc.lang == "en" and doc.symbol == "S/PV.8017"
    assert doc.paragraphs == clean.paragraphs


def test_chinese_pdf(tmp_path):
    clean = read_document(ZH)
    path = tmp_path / "record.zh.pdf"
    header = "S/PV.8017 恐怖行为对国际和平与安全造成的威胁 02/08/2017"
    _pdf(clean.paragraphs, path, "STSong-Light", header)
    doc = read_document(path, "zh")
    assert doc.symbol == "S/PV.8017"
    assert doc.paragraphs == clean.paragraphs


def test_docx(tmp_path):
    clean = read_document(EN)
    document = docx.Document()
    for paragraph in clean.paragraphs[:6]:
        document.add_paragraph(paragraph)
    table = document.add_table(rows=1, cols=1)
    table.cell(0, 0).text = "In favour:"
    document.add_paragraph("")
    document.add_paragraph(clean.paragraphs[6])
    path = tmp_path / "record.docx"
    document.save(path)
    doc = read_document(path, "en")
    assert doc.paragraphs == clean.paragraphs[:6] + ["In favour:"] + [clean.paragraphs[6]]


@pytest.mark.parametrize(
    "encode",
    [
        lambda t: t.encode("utf-8"),
        lambda t: b"\xef\xbb\xbf" + t.encode("utf-8"),
        lambda t: t.encode("utf-16"),  # little-endian with BOM
        lambda t: b"\xfe\xff" + t.encode("utf-16-be"),
    ],
    ids=["utf-8", "utf-8-bom", "utf-16-le-bom", "utf-16-be-bom"],
)
def test_text_encodings(encode):
    text = ZH.read_text(encoding="utf-8")
    doc = read_bytes(encode(text.replace("\n", "\r\n")), "record.txt")
    assert doc.paragraphs == read_document(ZH).paragraphs


OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (OLE, "record.doc", "unsupported file type (.doc) (save it as .docx)"),
        (OLE, "record", "unsupported file type (Word 97-2003) (save it as .docx)"),
        (b"{\\rtf1 text}", "minutes", "unsupported file type (RTF) (save it as .docx)"),
        (b"<html>", "record.html", "unsupported file type (.html)"),
        (b"<!DOCTYPE html><p>text", "record.txt", "unsupported file type (.txt)"),
        (b"", "record.txt", "the file is empty"),
        (b" \n\r\n\t", "record.txt", "the file is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "record.txt", "binary data"),
        (bytes(range(256)) * 8, "record", "binary data"),
        (b"%PDF-1.4 rest", "record.txt", "not a readable PDF"),
        (b"PK\x03\x04 a zip", "record", "a zip archive, not a .docx"),
        (b"%PDF-1.4 broken", "record.pdf", "not a readable PDF"),
        (b"PK\x03\x04broken", "record.docx", "not a readable .docx"),
        (b"not a zip", "record.docx", "not a readable .docx"),
        (b"12 34 56 -- 78", "record.txt", "no Chinese or English text"),
    ],
)
def test_bad_input_gives_one_clear_line(data, name, message):
    with pytest.raises(InputError) as info:
        read_bytes(data, name)
    text = str(info.value)
    assert message in text and name in text and "\n" not in text


def test_language_is_checked(shared_data):
    with pytest.raises(InputError, match="expected English text but it looks like Chinese"):
        read_document(shared_data / "un" / "S-PV-8017.zh.txt", "en")
    with pytest.raises(InputError, match="expected Chinese text"):
        read_document(EN, "zh")
    with pytest.raises(InputError, match="unsupported language"):
        read_document(EN, "fr")


def test_detect_language():
    assert detect_language("安全理事会第8017次会议 Security Council S/PV.8017") == "zh"
    assert detect_language("The Security Council (安理会) adopted resolution 2370 (2017).") == "en"
    assert detect_language("2370 (2017)") is None


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_document(tmp_path / "missing.txt")
    with pytest.raises(IsADirectoryError):
        read_document(tmp_path)


@pytest.mark.parametrize(
    ("name", "symbol"),
    [
        ("S-PV-8017.zh.txt", "S/PV.8017"),
        ("s_pv_8017_en.pdf", "S/PV.8017"),
        ("A-71-PV-58.docx", "A/71/PV.58"),
        ("report.txt", ""),
    ],
)
def test_symbol_from_name(name, symbol):
    assert symbol_from_name(name) == symbol


def test_pdf_without_text_or_encrypted(tmp_path):
    from pypdf import PdfWriter

    blank = PdfWriter()
    blank.add_blank_page(width=595, height=842)
    path = tmp_path / "scan.pdf"
    with path.open("wb") as f:
        blank.write(f)
    with pytest.raises(InputError, match="scan.pdf: the PDF has no text layer"):
        read_document(path)

    clean = read_document(EN)
    _pdf(clean.paragraphs[:3], tmp_path / "plain.pdf", "Helvetica", "S/PV.8017")
    locked = PdfWriter(clone_from=str(tmp_path / "plain.pdf"))
    locked.encrypt("secret")
    path = tmp_path / "locked.pdf"
    with path.open("wb") as f:
        locked.write(f)
    with pytest.raises(InputError, match="locked.pdf: the PDF is encrypted"):
        read_document(path)


REAL = [
    "S-PV-10124.part1.zh.txt", "S-PV-10124.part1.en.txt", "S-PV-8017.zh.txt",
    "S-PV-8422.en.pdf", "S-PV-3756.en.pdf", "A-79-PV-29.en.pdf",
]


@pytest.fixture(scope="module")
def real_documents(shared_data):
    return {name: read_document(shared_data / "un" / name) for name in REAL}


def _raw_text(path: Path) -> str:
    from aligner.read.ingest import _pdf_pages

    if path.suffix == ".pdf":
        return "\n".join(line for page in _pdf_pages(path.read_bytes(), path.name) for line in page)
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", REAL)
def test_nothing_lost_on_real_records(shared_data, real_documents, name):
    doc = real_documents[name]
    raw = _raw_text(shared_data / "un" / name)
    check_lossless(raw, doc)  # read_document ran it too; here it is seen to run on the input
    body = sum(ch.isalnum() for p in doc.paragraphs for ch in p)
    furniture = sum(ch.isalnum() for r in doc.removed for ch in r)
    assert body + furniture == sum(ch.isalnum() for ch in raw)
    assert furniture < 0.05 * body


def test_lossless_check_fails_when_text_is_dropped_moved_or_added(real_documents):
    from dataclasses import replace

    doc = real_documents["S-PV-10124.part1.en.txt"]
    raw = "\n".join(doc.paragraphs + doc.removed)
    check_lossless(raw, doc)
    cut = doc.paragraphs[:]
    words = cut[40].split()
    cut[40] = " ".join(words[:3] + words[4:])
    lost = sum(ch.isalnum() for ch in words[3])
    with pytest.raises(TextLostError, match=f"lost {lost} letters or digits"):
        check_lossless(raw, replace(doc, paragraphs=cut))
    with pytest.raises(TextLostError, match="lost"):
        check_lossless(raw, replace(doc, removed=doc.removed[1:]))
    with pytest.raises(TextLostError, match="added 2"):
        check_lossless(raw, replace(doc, paragraphs=doc.paragraphs + ["42"]))
    swapped = doc.paragraphs[:]
    swapped[10], swapped[11] = swapped[11], swapped[10]
    with pytest.raises(TextLostError, match="reordered"):
        check_lossless(raw, replace(doc, paragraphs=swapped))


# ------------------------------------------------ real records: 2026, 2018, 1997, GA 2024

FINAL_ZH = ("。", "！", "？", "：", "”", "）", "…")


def sentences(doc):
    return [s for p in doc.paragraphs for s in split_sentences(p, doc.lang)]


def test_chinese_single_column_lines_joined_and_furniture_gone(real_documents):
    doc = real_documents["S-PV-10124.part1.zh.txt"]
    paras = doc.paragraphs
    # Wrapped lines are joined without a space, numbers lose the space the extraction left.
    assert any(
        p.startswith("迪卡洛女士（以英语发言）：俄罗斯联邦大规模入侵乌克兰已有四年多——近1500个")
        for p in paras
    )
    # A page break inside a sentence ("由" | furniture | "于缺少准入…") is no paragraph end.
    joined = "当地官员报告了指称的打击造成平民伤亡和基础设施受损。由于缺少准入"
    assert any(joined in p for p in paras)
    assert "S/PV.10124 维护乌克兰和平与安全 23/03/2026" in doc.removed
    assert "26-03920 3/26" in doc.removed
    assert "23/03/2026 维护乌克兰和平与安全 S/PV.10124" in doc.removed
    assert not any(re.search(r"26-03920|\d+/26|23/03/2026", p) for p in paras)
    # No paragraph ends inside a sentence: one without final punctuation is a cover or agenda line.
    open_ended = [p for p in paras if not p.endswith(FINAL_ZH)]
    assert all(len(p) <= 20 or "..." in p for p in open_ended), open_ended
    assert len(paras) < 130  # 350 printed lines of body and cover
    # The cover's President and members are paragraphs of their own.
    assert "主席：兰道先生/沃尔兹先生........................（美利坚合众国）" in paras
    assert any(p.startswith("成员：巴林....") for p in paras)
    latvia = "帕夫乌塔-德斯兰德斯女士（拉脱维亚）（以英语发言）：主席先生"
    assert any(p.startswith(latvia) for p in paras)


def test_english_single_column_2026(real_documents):
    doc = real_documents["S-PV-10124.part1.en.txt"]
    paras = doc.paragraphs
    assert "26-039202/28" in doc.removed and "9/2826-03920" in doc.removed  # glued job and page
    assert not any(re.search(r"26-03920|\d+/28|23/03/2026", p) for p in paras)
    assert any(p.startswith("President: Mr. Landau/Mr. Waltz ....") for p in paras)
    assert any(p.startswith("Mr. Kariuki (United Kingdom): I welcome you") for p in paras)
    assert any(p.startswith("Ms. Pavļuta-Deslandes (Latvia): Let me begin by") for p in paras)
    text = " ".join(paras)
    assert "Under-Secretary-General for Political and Peacebuilding Affairs" in text
    # Spaces the extraction put inside words go when the pieces are no words of the record.
    assert "Kharkiv reportedly killed" in text and "publi c" not in text and "n ow" not in text
    assert "an d" not in text or "and" in text  # "an" is a word: never joined on a guess


def test_split_words_joined_only_when_the_pieces_are_no_words():
    from aligner.read.reflow import _rejoin_split_words

    lines = [
        "The war has n ow lasted more than four years, and it is now a war of attrition.",
        "Peace keeping is hard; peace is harder; peacekeeping is our work.",
        "Any one of us can help; no one can stop anyone.",
        "It was reporte dly seen by publi c officials, reportedly in public.",
    ]
    assert _rejoin_split_words(lines) == [
        "The war has now lasted more than four years, and it is now a war of attrition.",
        lines[1],
        lines[2],
        "It was reportedly seen by public officials, reportedly in public.",
    ]


def test_english_pdfs_1997_2018_2024(real_documents):
    old = real_documents["S-PV-3756.en.pdf"]
    assert old.removed.count("Security Council 3756th meeting") == 10  # a running header
    assert "Fifty-second year 21 March 1997" in old.removed and "11" in old.removed
    text = "\n".join(old.paragraphs)
    assert "Security Council 3756th meeting" not in text
    assert "the most recent informal consultations, that there must be unity" in text
    assert "The President: We have now come to the end of the voting procedure." in old.paragraphs
    two_columns = real_documents["S-PV-8422.en.pdf"]
    assert "S/ PV. 8422 The situation in the Central African Republic 13/12/2018" in (
        two_columns.removed
    )
    assert any(
        p.startswith("The President (spoke in French): The draft resolution received 13 votes")
        for p in two_columns.paragraphs
    )
    assert any(p.startswith("Mr. Delattre (France) (spoke in French): France welcomes") for p in (
        two_columns.paragraphs
    ))
    general_assembly = real_documents["A-79-PV-29.en.pdf"]
    assert general_assembly.symbol == "A/79/PV.29"
    assert general_assembly.removed.count("29/10/2024 A/79/PV.29") == 18
    assert not any("24-19856" in p for p in general_assembly.paragraphs)


def pdftotext_form(text: str) -> str:
    """The text as pdftotext writes it: a form feed between pages, blank lines around furniture."""
    from aligner.read.furniture import is_furniture

    out: list[str] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not is_furniture(line):
            out.append(line)
        elif i and not is_furniture(lines[i - 1]):  # the footer of a page
            out += ["", line, "\f"]
        else:  # the header of the next page
            out += [line, ""]
    return "\n".join(out).replace("\n\f\n", "\n\f") + "\n"


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_pdftotext_text_with_form_feeds_reads_as_the_clean_text(shared_data, real_documents, lang):
    clean = real_documents[f"S-PV-10124.part1.{lang}.txt"]
    text = (shared_data / "un" / f"S-PV-10124.part1.{lang}.txt").read_text(encoding="utf-8")
    form = pdftotext_form(text)
    assert form.count("\f") >= 9 and "\n\n" in form
    doc = read_bytes(form.encode(), f"S-PV-10124.{lang}")  # no extension: read by content
    assert doc.paragraphs == clean.paragraphs
    assert doc.removed == clean.removed


def test_page_break_inside_a_sentence_loses_nothing():
    """`Mr. Rycroft (United Kingdom): Let me start by` + page break + `thanking…`."""
    clean = read_document(EN)
    for width in range(40, 100):  # a column width that ends a line with "Let me start by"
        body = [line for p in clean.paragraphs for line in wrap(p, width)]
        ends = [i for i, line in enumerate(body) if line.endswith("Let me start by")]
        if ends:
            break
    cut = ends[0] + 1
    assert body[cut].startswith("thanking Ambassador Liu Jieyi")
    pages = [
        "\n".join(body[:cut]) + "\n\n17-24158 3/26\n",
        "02/08/2017 Threats to international peace and security S/PV.8017\n\n"
        + "\n".join(body[cut:]) + "\n",
    ]
    doc = read_bytes("\f".join(pages).encode(), "record.text")
    assert any(
        p.startswith("Mr. Rycroft (United Kingdom): Let me start by thanking Ambassador Liu Jieyi")
        for p in doc.paragraphs
    )
    assert doc.removed == [
        "17-24158 3/26", "02/08/2017 Threats to international peace and security S/PV.8017"
    ]
    assert sentences(doc) == sentences(clean)


def test_chinese_running_header_with_chinese_date():
    clean = read_document(ZH)
    lines = ZH.read_text(encoding="utf-8").splitlines()
    header = "S/PV.8017 恐怖行为对国际和平与安全造成的威胁 2017年8月2日"
    footer = "2017年8月2日 恐怖行为对国际和平与安全造成的威胁 S/PV.8017"
    for at, furniture in ((161, footer), (101, "6/26 17-24158"), (41, header)):
        lines[at:at] = ["", furniture]
    doc = read_bytes("\n".join(lines).encode(), "record.txt")
    assert doc.removed == [header, "6/26 17-24158", footer]
    assert doc.paragraphs == clean.paragraphs


def test_docx_of_a_real_record(tmp_path, real_documents):
    for lang in ("zh", "en"):
        clean = real_documents[f"S-PV-10124.part1.{lang}.txt"]
        document = docx.Document()
        for paragraph in clean.paragraphs:
            document.add_paragraph(paragraph)
        document.sections[0].header.paragraphs[0].text = "S/PV.10124 23/03/2026"
        path = tmp_path / f"S-PV-10124.{lang}.docx"
        document.save(path)
        doc = read_document(path)
        assert doc.lang == lang and doc.encoding == ""
        assert doc.paragraphs == clean.paragraphs


BODY_STARTS = ("The meeting was", "下午3时")


def _two_column_pdf(paragraphs: list[str], path: Path, lang: str) -> None:
    """Typeset a record like UN's two-column layout: a full-width cover, then two columns, with a
    running header and a footer on every page (reportlab, test-only)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.platypus import (
        BaseDocTemplate,
        Frame,
        NextPageTemplate,
        PageBreak,
        PageTemplate,
        Paragraph,
    )

    if lang == "zh":
        font = "STSong-Light"
        pdfmetrics.registerFont(UnicodeCIDFont(font))
        header = "S/PV.10124 维护乌克兰和平与安全 23/03/2026"
    else:
        font = "Vera"  # shipped with reportlab
        pdfmetrics.registerFont(TTFont(font, "Vera.ttf"))
        header = "S/PV.10124 Maintenance of peace and security of Ukraine 23/03/2026"
    style = ParagraphStyle(
        "body", fontName=font, fontSize=10, leading=13, firstLineIndent=20,
        wordWrap="CJK" if lang == "zh" else None,
    )
    cover = ParagraphStyle("cover", parent=style, fontSize=6, leading=8, firstLineIndent=0)
    width, height = A4
    margin, gap = 54, 18
    column = (width - 2 * margin - gap) / 2

    def furniture(canvas, document):
        canvas.setFont(font, 8)
        canvas.drawString(margin, height - 36, header)
        canvas.drawString(margin, 30, f"26-03920 {document.page}/26")

    columns = [
        Frame(margin + k * (column + gap), margin, column, height - 2 * margin) for k in (0, 1)
    ]
    full = Frame(margin, margin, width - 2 * margin, height - 2 * margin)
    document = BaseDocTemplate(str(path), pagesize=A4)
    document.addPageTemplates([
        PageTemplate("cover", frames=[full]),
        PageTemplate("body", frames=columns, onPage=furniture),
    ])
    start = next(i for i, p in enumerate(paragraphs) if p.startswith(BODY_STARTS))

    def flow(p, s):
        return Paragraph(p.replace("&", "&amp;").replace("<", "&lt;"), s)

    document.build(
        [flow(p, cover) for p in paragraphs[:start]]
        + [NextPageTemplate("body"), PageBreak()]
        + [flow(p, style) for p in paragraphs[start:]]
    )


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_two_column_pdf_of_a_real_record(tmp_path, real_documents, lang):
    from reportlab.pdfbase.ttfonts import TTFont

    clean = real_documents[f"S-PV-10124.part1.{lang}.txt"]
    paragraphs = clean.paragraphs
    if lang == "en":  # Vera has no "ļ" (Pavļuta): typeset and expect what it can print
        glyphs = TTFont("Vera", "Vera.ttf").face.charWidths
        paragraphs = ["".join(c if ord(c) in glyphs else "l" for c in p) for p in paragraphs]
    path = tmp_path / f"S-PV-10124.{lang}.pdf"
    _two_column_pdf(paragraphs, path, lang)
    doc = read_document(path, lang)
    assert doc.symbol == "S/PV.10124"
    assert len(doc.removed) >= 8 and all("26-03920" in r or "S/PV" in r for r in doc.removed)
    expected = [s for p in paragraphs for s in split_sentences(p, lang)]
    body = next(i for i, s in enumerate(expected) if s.startswith(BODY_STARTS))
    got = sentences(doc)
    assert got[-(len(expected) - body):] == expected[body:]  # the body, sentence for sentence
    assert [p for p in doc.paragraphs if "....." in p] == [p for p in paragraphs if "....." in p]


@pytest.mark.parametrize(
    ("source", "encoding", "expected"),
    [
        ("S-PV-10124.part1.zh.txt", "gb18030", "gb18030"),
        (ZH, "gbk", "gb18030"),  # GBK and GB2312 are read as GB18030, which contains them
        (ZH, "utf-16-le", "utf-16-le"),  # no byte-order mark
        (ZH, "utf-16-be", "utf-16-be"),
        (DATA / "record_excerpt.zh-hant.txt", "big5", "big5"),
        (EN, "cp1252", "utf-8"),  # plain ASCII is UTF-8
    ],
)
def test_encodings_detected_and_reported(shared_data, source, encoding, expected):
    path = source if isinstance(source, Path) else shared_data / "un" / source
    text = path.read_text(encoding="utf-8")
    text = "".join(c for c in text if c.encode(encoding, "ignore"))  # GBK has no "•", "\u2004"
    doc = read_bytes(text.encode(encoding), "record")
    assert doc.encoding == expected
    assert doc.paragraphs == read_bytes(text.encode("utf-8"), "record").paragraphs


def test_windows_1252_english():
    text = "Mr. Lavrov (Russian Federation) (spoke in Russian): Café “Résolution” adopted.\n"
    doc = read_bytes(text.encode("cp1252"), "notes")
    assert doc.encoding == "cp1252" and doc.paragraphs == [text.strip()]


@pytest.mark.parametrize("name", ["S-PV-10124.zh", "record.text", "RECORD.TXT", "record.md"])
def test_text_recognised_by_content_whatever_its_name(shared_data, name):
    data = (shared_data / "un" / "S-PV-10124.part1.zh.txt").read_bytes()
    doc = read_bytes(data, name)
    assert doc.lang == "zh" and doc.symbol == "S/PV.10124" and doc.encoding == "utf-8"


def test_pdf_and_docx_recognised_by_content(tmp_path):
    clean = read_document(EN)
    _pdf(clean.paragraphs[:3], tmp_path / "a.pdf", "Helvetica", "S/PV.8017")
    pdf = (tmp_path / "a.pdf").read_bytes()
    assert read_bytes(pdf, "record").paragraphs == clean.paragraphs[:3]
    document = docx.Document()
    document.add_paragraph(clean.paragraphs[0])
    document.save(tmp_path / "a.docx")
    assert read_bytes((tmp_path / "a.docx").read_bytes(), "record.txt").paragraphs == [
        clean.paragraphs[0]
    ]


def test_mostly_page_furniture_is_refused(shared_data, tmp_path):
    from aligner.cli import main

    footer = "\n".join(f"17-24158 {n}/26\nS/PV.8017 Threats 02/08/2017\n\f" for n in range(2, 26))
    with pytest.raises(InputError, match="only page headers and footers"):
        read_bytes(footer.encode(), "record.txt")
    path = tmp_path / "mostly.en.txt"
    path.write_text(footer + "The meeting rose at 1 p.m.\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"mostly page headers and footers \(\d+ letters"):
        read_document(path)
    out = tmp_path / "out.tmx"
    zh = str(shared_data / "un" / "S-PV-10124.part1.zh.txt")
    assert main(["align", zh, str(path), "-o", str(out)]) == 2
    assert sorted(tmp_path.iterdir()) == [path]  # nothing half-written


def test_scanned_pdf_through_the_command_line(shared_data, tmp_path, capsys):
    from pypdf import PdfWriter

    from aligner.cli import main

    blank = PdfWriter()
    blank.add_blank_page(width=595, height=842)
    scan = tmp_path / "S-PV-10124.en.pdf"
    with scan.open("wb") as f:
        blank.write(f)
    zh = str(shared_data / "un" / "S-PV-10124.part1.zh.txt")
    assert main(["align", zh, str(scan), "-o", str(tmp_path / "out.tmx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("S-PV-10124.en.pdf: the PDF has no text layer (a scan?); OCR it first")
    assert "\n" not in err and sorted(tmp_path.iterdir()) == [scan]


def test_pdftotext_layout_two_columns_side_by_side(real_documents):
    """`pdftotext -layout` of S/PV.8422, pages 8 and 9: the columns share lines."""
    doc = read_document(DATA / "S-PV-8422.pdftotext-layout.en.txt")
    pdf = set(sentences(real_documents["S-PV-8422.en.pdf"]))
    got = sentences(doc)[1:]  # the first was cut by the excerpt
    assert len(got) > 25
    assert all(s in pdf for s in got), [s for s in got if s not in pdf]
    assert doc.paragraphs[-1] == "The meeting rose at 3.55 p.m."
    assert doc.removed == [
        "S/PV.8422 The situation in the Central African Republic 13/12/2018", "8/9 18-43649",
        "13/12/2018 The situation in the Central African Republic S/PV. 8422", "18-43649 9/9",
    ]


def test_pdftotext_layout_chinese_two_columns(real_documents):
    doc = read_document(DATA / "S-PV-10124.pdftotext-layout.zh.txt")
    clean = set(sentences(real_documents["S-PV-10124.part1.zh.txt"]))
    got = sentences(doc)[1:-1]  # the first and last were cut by the excerpt
    assert len(got) > 25
    assert all(s in clean for s in got), [s for s in got if s not in clean]
    assert len(doc.removed) == 4


def test_a_symbol_ending_a_sentence_on_its_own_line_is_text():
    """Issue 19: a wrapped ``A/79/L.8.`` is the end of a sentence, not a page header."""
    from aligner.read.furniture import is_furniture

    assert not is_furniture("A/79/L.8.") and not is_furniture("S/2026/8,")
    assert is_furniture("A/79/PV.29") and is_furniture("S/PV.3756")
    from aligner.read.furniture import strip_furniture

    lines = ["For all these reasons, Nicaragua will vote against draft resolution",
             "A/79/L.8.", "The Acting President: We have heard the only speaker.",
             "A/79/PV.29", "29/30 24-31542"]
    assert strip_furniture([lines]) == (lines[:3], lines[3:])
