"""Reading records: the real Chinese PDF text, English in the forms users have it, bad files."""

import re
from pathlib import Path

import docx
import pytest

from aligner.errors import InputError, TextLostError
from aligner.ingest import (
    check_lossless,
    detect_language,
    read_bytes,
    read_document,
    symbol_from_name,
)
from aligner.segment import split_sentences
from aligner.turns import parse_turns

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
    from aligner.ingest import _pdf_pages

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
