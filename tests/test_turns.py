"""Speaker turns of the real Chinese record and of English records in the UN format."""

import json
from pathlib import Path

import pytest

from aligner.cli import main
from aligner.errors import TextLostError
from aligner.models import Document
from aligner.read.ingest import read_document
from aligner.record import speakers
from aligner.record.turns import check_turns, parse_heading, parse_turns, procedural_kind

DATA = Path(__file__).parent / "data"

# S/PV.8017 read by hand: (speaker, country or organisation, language of delivery) of every
# speech turn, in order, as printed in the Chinese record.
PV8017_SPEAKERS = [
    ("主席", "", "阿拉伯语"),
    ("费多托夫先生", "", "英语"),
    ("主席", "", "阿拉伯语"),
    ("汗先生", "", "英语"),
    ("主席", "", "阿拉伯语"),
    ("陈伟雄先生", "", ""),
    ("主席", "", "阿拉伯语"),
    ("鲁先生", "", "法语"),
    ("主席", "", "阿拉伯语"),
    ("主席", "", "阿拉伯语"),  # after the vote: result, then statement as Egypt
    ("里克罗夫特先生", "联合王国", "英语"),
    ("内边贾先生", "俄罗斯联邦", "俄语"),
    ("黑利夫人", "美利坚合众国", "英语"),
    ("萨迪科夫先生", "哈萨克斯坦", "英语"),
    ("斯科先生", "瑞典", "英语"),
    ("略伦蒂·索利斯先生", "多民族玻利维亚国", "西班牙语"),
    ("兰贝蒂尼先生", "意大利", "英语"),
    ("阿莱穆先生", "埃塞俄比亚", "英语"),
    ("刘先生", "中国", ""),
    ("利苏琴科先生", "乌克兰", "英语"),
    ("塞克先生", "塞内加尔", "法语"),
    ("罗塞利先生", "乌拉圭", "西班牙语"),
    ("川村先生", "日本", "英语"),
    ("德拉特先生", "法国", "法语"),
    ("主席", "", "阿拉伯语"),
]
# Procedural turns: opening, agenda (with the agenda item), the vote, closing.
PV8017_PROCEDURAL = {
    0: "上午10时10分开会。", 1: "通过议程", 11: "进行了举手表决。", 28: "中午12时15分散会。"
}


@pytest.fixture(scope="module")
def record_turns(shared_data):
    return parse_turns(read_document(shared_data / "un" / "S-PV-8017.zh.txt"))


def test_real_record_turns_as_counted_by_hand(record_turns):
    assert len(record_turns) == 29
    speeches = [(t.speaker, t.country, t.language) for t in record_turns if t.kind == "speech"]
    assert speeches == PV8017_SPEAKERS
    procedural = {i: t.paragraphs[0] for i, t in enumerate(record_turns) if t.kind != "speech"}
    assert procedural == PV8017_PROCEDURAL
    assert record_turns[1].paragraphs[2:] == [
        "恐怖行为对国际和平与安全造成的威胁", "防止恐怖分子获取武器"
    ]
    assert record_turns[11].paragraphs[1:2] == ["赞成:"]
    assert record_turns[11].paragraphs[2].endswith("美利坚合众国和乌拉圭")
    assert [t.is_president for t in record_turns if t.kind == "speech"] == [
        s == "主席" for s, _, _ in PV8017_SPEAKERS
    ]


def test_real_record_turn_contents(record_turns):
    for turn in record_turns:
        for paragraph in turn.paragraphs:
            assert parse_heading(paragraph, "zh") is None, paragraph[:30]
    # a language note in the middle of a speech is a paragraph (a procedural unit), issue 19
    notes = [(k, p) for k, t in enumerate(record_turns) for p in t.paragraphs if p[:2] == "（以"]
    assert notes == [(7, "（以英语发言）"), (9, "（以英文发言）")]
    chen = record_turns[7]
    assert chen.paragraphs[0].startswith("今天，安全理事会讨论防止恐怖主义分子获取武器问题")
    assert chen.paragraphs[1] == "（以英语发言）"
    assert chen.paragraphs[2].startswith("安理会在其许多决议中强调了")
    president_as_egypt = record_turns[12]
    assert president_as_egypt.paragraphs[1].startswith("我现在谨以埃及代表的身份发言。")
    assert president_as_egypt.paragraphs[-1] == "我现在请希望发言的安理会其他成员发言。"
    assert record_turns[27].paragraphs == ["发言名单上没有其他发言者了。"]


@pytest.mark.parametrize(
    ("text", "lang", "speaker", "country", "language", "rest"),
    [
        ("主席（以阿拉伯语发言）：根据", "zh", "主席", "", "阿拉伯语", "根据"),
        ("费多托夫先生（以英语发言）：请允许", "zh", "费多托夫先生", "", "英语", "请允许"),
        (
            "里克罗夫特先生（联合王国）（以英语发言）：我愿",
            "zh", "里克罗夫特先生", "联合王国", "英语", "我愿",
        ),
        ("刘先生（中国）：主席先生", "zh", "刘先生", "中国", "", "主席先生"),
        ("黑利夫人（美利坚合众国）（以英语发言）：", "zh", "黑利夫人", "美利坚合众国", "英语", ""),
        ("陈伟雄先生：今天", "zh", "陈伟雄先生", "", "", "今天"),
        ("The President (spoke in Arabic): In", "en", "The President", "", "Arabic", "In"),
        ("Mr. Fedotov (spoke in English): Let", "en", "Mr. Fedotov", "", "English", "Let"),
        ("Mr. Rycroft (United Kingdom): Let", "en", "Mr. Rycroft", "United Kingdom", "", "Let"),
        (
            "Mrs. Haley (United States of America): Mr. President",
            "en", "Mrs. Haley", "United States of America", "", "Mr. President",
        ),
        (
            "Mr. Nebenzia (Russian Federation) (spoke in Russian): First",
            "en", "Mr. Nebenzia", "Russian Federation", "Russian", "First",
        ),
        (
            "Mr. Llorentty Solíz (Plurinational State of Bolivia) (spoke in Spanish): At",
            "en", "Mr. Llorentty Solíz", "Plurinational State of Bolivia", "Spanish", "At",
        ),
        ("The President: I", "en", "The President", "", "", "I"),
        # hyphens, middle dots, two names, apostrophes, initials, organisations, old notes
        (
            "帕夫乌塔-德斯兰德斯女士（拉脱维亚）（以英语发言）：主席先生",
            "zh", "帕夫乌塔-德斯兰德斯女士", "拉脱维亚", "英语", "主席先生",
        ),
        ("罗斯玛丽 · 迪卡洛女士（以英语发言）：俄罗斯", "zh", "罗斯玛丽 · 迪卡洛女士", "", "英语",
         "俄罗斯"),
        ("斯塔夫罗斯•兰布里尼蒂斯先生（欧洲联盟）：我", "zh", "斯塔夫罗斯•兰布里尼蒂斯先生",
         "欧洲联盟", "", "我"),
        ("兰道先生/沃尔兹先生（美利坚合众国）：我", "zh", "兰道先生/沃尔兹先生", "美利坚合众国",
         "", "我"),
        ("Mr. Landau/Mr. Waltz (United States of America): I", "en", "Mr. Landau/Mr. Waltz",
         "United States of America", "", "I"),
        ("Ms. Pavļuta-Deslandes (Latvia): Let", "en", "Ms. Pavļuta-Deslandes", "Latvia", "",
         "Let"),
        ("Mr. O’Brien (Ireland): We", "en", "Mr. O’Brien", "Ireland", "", "We"),
        ("Mr. d’Escoto Brockmann (Nicaragua) (spoke in Spanish): I", "en",
         "Mr. d’Escoto Brockmann", "Nicaragua", "Spanish", "I"),
        ("Mr. A. K. Abdul Momen (Bangladesh): I", "en", "Mr. A. K. Abdul Momen", "Bangladesh",
         "", "I"),
        ("Mr. Lambrinidis (European Union): I", "en", "Mr. Lambrinidis", "European Union", "",
         "I"),
        ("Mr. Elaraby (Egypt)(interpretation from Arabic): Today", "en", "Mr. Elaraby", "Egypt",
         "Arabic", "Today"),
        ("The President (spoke in French): In", "en", "The President", "", "French", "In"),
    ],
)
def test_headings(text, lang, speaker, country, language, rest):
    turn, after = parse_heading(text, lang)
    assert (turn.speaker, turn.country, turn.language, after) == (speaker, country, language, rest)
    assert turn.is_president == (speaker in ("主席", "The President"))


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("主席先生，我谨祝愿你在担任安全理事会本月主席期间一切顺利。", "zh"),
        ("决议强调了国际司法合作和执法对于防止恐怖分子获取武器的重要性：", "zh"),
        ("Mr. President, I wish you every success: you have given us a great start.", "en"),
        ("Mr. Fedotov said: the threat is real.", "en"),
        ("As Mr. Rycroft (United Kingdom) noted: the threat is real.", "en"),
        ("In favour:", "en"),
        # cover page lines
        ("主席： 兰道先生/沃尔兹先生 . . . . . . . . . . . . （美利坚合众国）", "zh"),
        ("主席：兰道先生/沃尔兹先生……………（美利坚合众国）", "zh"),
        ("The President: Mr. Adom . . . . . . . . . . . (Côte d’Ivoire)", "en"),
    ],
)
def test_not_headings(text, lang):
    assert parse_heading(text, lang) is None


@pytest.mark.parametrize(
    ("text", "lang", "kind"),
    [
        ("上午10时10分开会。", "zh", "opening"),
        ("中午12时15分散会。", "zh", "closing"),
        ("议程通过。", "zh", "agenda"),
        ("进行了举手表决。", "zh", "vote"),
        ("反对：", "zh", "vote"),
        ("The meeting was called to order at 10.10 a.m.", "en", "opening"),
        ("The meeting rose at 12.15 p.m.", "en", "closing"),
        ("The meeting was suspended at 11.40 a.m.", "en", "closing"),
        ("Adoption of the agenda", "en", "agenda"),
        ("A vote was taken by show of hands.", "en", "vote"),
        ("A recorded vote was taken.", "en", "vote"),
        ("Abstaining:", "en", "vote"),
        ("The meeting was a success.", "en", ""),
        ("我现在恢复行使安全理事会主席职能。", "zh", ""),
    ],
)
def test_procedural_kinds(text, lang, kind):
    assert procedural_kind(text, lang) == kind


def test_english_record_excerpt():
    turns = parse_turns(read_document(DATA / "record_8017_excerpt.en.txt"))
    assert [(t.kind, t.speaker, t.country, t.language) for t in turns] == [
        ("procedural", "", "", ""),
        ("procedural", "", "", ""),
        ("speech", "The President", "", "Arabic"),
        ("speech", "Mr. Fedotov", "", ""),
        ("speech", "The President", "", "Arabic"),
        ("procedural", "", "", ""),
        ("speech", "The President", "", "Arabic"),
        ("speech", "Mr. Rycroft", "United Kingdom", ""),
        ("speech", "Mr. Nebenzia", "Russian Federation", "Russian"),
        ("speech", "Mrs. Haley", "United States of America", ""),
        ("speech", "Mr. Sadykov", "Kazakhstan", ""),
        ("speech", "Mr. Liu Jieyi", "China", "Chinese"),
        ("speech", "The President", "", "Arabic"),
        ("procedural", "", "", ""),
    ]
    assert turns[5].paragraphs[:2] == ["A vote was taken by show of hands.", "In favour:"]
    assert [len(t.paragraphs) for t in turns] == [1, 4, 5, 2, 2, 3, 5, 3, 1, 1, 2, 2, 1, 1]


def test_text_without_headings_has_no_turns():
    doc = Document(paragraphs=["第一段。", "第二段：说明。"], lang="zh")
    assert parse_turns(doc) == []


def test_turns_command(shared_data, capsys):
    path = shared_data / "un" / "S-PV-8017.zh.txt"
    assert main(["turns", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["#", "kind", "speaker", "country/org", "language", "paras", "start"]
    assert lines[14].split()[:6] == ["13", "speech", "里克罗夫特先生", "联合王国", "英语", "10"]
    assert lines[-1] == "29 turns: 25 speech, 4 procedural (S/PV.8017, zh)"

    assert main(["turns", str(path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 29
    assert rows[13] == {
        "index": 13,
        "kind": "speech",
        "speaker": "里克罗夫特先生",
        "country": "联合王国",
        "language": "英语",
        "is_president": False,
        "heading": "里克罗夫特先生（联合王国）（以英语发言）：",
        "notes": [],
        "paragraphs": 10,
        "start": "我愿首先感谢刘结一大使及其团队上个月非常圆满地主持了安理会工",
    }


def test_turns_command_bad_file(tmp_path, capsys):
    path = tmp_path / "minutes.rtf"
    path.write_text("{\\rtf1}")
    assert main(["turns", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("aligner: error: minutes.rtf: unsupported file type (.rtf)")


def test_name_table():
    table = speakers.names()
    assert sum(1 for n in table if n.kind == "state") == 193
    seen: dict[str, str] = {}
    for name in table:
        for variant in name.en + name.zh:
            assert seen.setdefault(variant.lower(), name.key) == name.key, variant
    # The 2017 Council members as the two versions of S/PV.8017 print them.
    council = [
        ("多民族玻利维亚国", "Plurinational State of Bolivia"), ("中国", "China"),
        ("埃及", "Egypt"), ("埃塞俄比亚", "Ethiopia"), ("法国", "France"), ("意大利", "Italy"),
        ("日本", "Japan"), ("哈萨克斯坦", "Kazakhstan"), ("俄罗斯联邦", "Russian Federation"),
        ("塞内加尔", "Senegal"), ("瑞典", "Sweden"), ("乌克兰", "Ukraine"),
        ("联合王国", "United Kingdom"), ("美利坚合众国", "United States of America"),
        ("乌拉圭", "Uruguay"),
    ]
    for zh, en in council:
        assert speakers.entity(zh) and speakers.entity(zh) == speakers.entity(en), zh
    assert speakers.entity("国际刑警组织") == speakers.entity("INTERPOL")
    assert speakers.entity("Atlantis") == ""
    # heads of delegations of organisations, described at length
    eu = "Head of the Delegation of the European Union to the United Nations"
    assert speakers.entity(eu) == speakers.entity("欧洲联盟驻联合国代表团团长") == "European Union"
    assert speakers.entity("刚果民主共和国常驻代表") == "Democratic Republic of the Congo"
    assert speakers.entity("Nigerian delegation") == ""
    assert speakers.language("以英语发言") == speakers.language("spoke in English") == "English"
    assert speakers.language("（以英文发言）") == "English"
    assert speakers.language("以克林贡语发言") == ""
    assert speakers.role("古特雷斯秘书长") == speakers.role("The Secretary-General")
    assert speakers.role("阿明娜·穆罕默德常务副秘书长") == "Deputy Secretary-General"
    assert speakers.title("黑利夫人") == speakers.title("Mrs. Haley") == "Mrs."


def test_turns_command_on_plain_text(shared_data, tmp_path, capsys):
    lines = (shared_data / "unpc-dev" / "en.txt").read_text(encoding="utf-8").splitlines()[:20]
    path = tmp_path / "report.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["turns", str(path)]) == 0
    assert capsys.readouterr().out == "report.txt: no speaker headings found (20 paragraphs)\n"
    assert main(["turns", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def speech_list(turns):
    return [(t.speaker, t.country, t.language) for t in turns if t.kind == "speech"]


# S/PV.10124 (first part), both versions read by hand: the cover page (President, Members,
# agenda) is procedural, and every statement is a turn.
PV10124_ZH = [
    ("主席", "", "英语"), ("迪卡洛女士", "", "英语"), ("主席", "", "英语"),
    ("弗莱彻先生", "", "英语"), ("主席", "", "英语"),
    ("帕夫乌塔-德斯兰德斯女士", "拉脱维亚", "英语"), ("拉森女士", "丹麦", "英语"),
    ("博纳方先生", "法国", "法语"), ("巴尔塔夫人", "希腊", "英语"),
    ("卡留乌基先生", "联合王国", "英语"),
]
PV10124_EN = [
    ("The President", "", ""), ("Ms. DiCarlo", "", ""), ("The President", "", ""),
    ("Mr. Fletcher", "", ""), ("The President", "", ""),
    ("Ms. Pavļuta-Deslandes", "Latvia", ""), ("Ms. Lassen", "Denmark", ""),
    ("Mr. Bonnafont", "France", "French"), ("Mrs. Balta", "Greece", ""),
    ("Mr. Kariuki", "United Kingdom", ""),
]
# The English PDFs, read by hand (pdftotext): every speaker heading in order.
PV8422 = [
    ("The President", "", "French"), ("The President", "", "French"),
    ("Mr. Delattre", "France", "French"), ("The President", "", "French"),
    ("Mr. Blok", "Netherlands", ""), ("Mr. Cohen", "United States of America", ""),
    ("Mr. Nebenzia", "Russian Federation", "Russian"), ("Ms. Wronecka", "Poland", ""),
    ("Mr. Ma Zhaoxu", "China", "Chinese"), ("Mr. Skoog", "Sweden", ""),
    ("The President", "", "French"), ("Ms. Kpongo", "Central African Republic", "French"),
]
PV3756 = (
    [("The President", "", "")] * 3
    + [
        ("Mr. Elaraby", "Egypt", "Arabic"), ("Mr. Berrocal Soto", "Costa Rica", "Spanish"),
        ("Mr. Owada", "Japan", ""), ("Mr. Wang Xuexian", "China", "Chinese"),
        ("Mr. Richardson", "United States of America", ""),
    ]
    + [("The President", "", "")] * 2
    + [
        ("Mr. Ladsous", "France", "French"), ("Mr. Lavrov", "Russian Federation", "Russian"),
        ("Mr. Monteiro", "Portugal", ""), ("Mr. Lidén", "Sweden", ""), ("The President", "", ""),
        ("Mr. Al-Kidwa", "Palestine", "Arabic"), ("The President", "", ""),
        ("Mr. Peleg", "Israel", ""), ("Mr. Elaraby", "Egypt", ""), ("The President", "", ""),
    ]
)
_AP = ("The Acting President", "", "")
A79PV29 = [
    ("Mr. Kiboino", "Kenya", ""), ("Mr. Korbieh", "Ghana", ""),
    ("Ms. Schwalger", "New Zealand", ""),
    ("Mr. Mukongo", "Democratic Republic of the Congo", "French"),
    ("Ms. Flores Soto", "El Salvador", "Spanish"), ("Mr. Babo Soares", "Timor-Leste", ""),
    ("Mr. Zoumanigui", "Guinea", "French"), ("Ms. Monica", "Bangladesh", ""),
    ("Mr. Quintana Aranguren", "Colombia", "Spanish"),
    ("Ms. Zabolotskaya", "Russian Federation", "Russian"), _AP,
    ("Ms. Emelina-Sarte", "Department for General Assembly and Conference Management", ""),
    _AP, ("Mrs. Llano", "Nicaragua", "Spanish"), _AP, _AP,
    ("Mr. Evseenko", "Belarus", "Russian"), ("Mrs. Rangasamy", "India", ""), _AP,
    ("Mr. Paulauskas", "Lithuania", ""), ("Mr. Evseenko", "Belarus", "Russian"),
    ("Mr. Paulauskas", "Lithuania", ""), _AP, ("Mr. Montalvo Sosa", "Ecuador", "Spanish"),
    ("Mr. Al Shehhi", "Oman", "Arabic"), ("Mr. Margaryan", "Armenia", ""),
    ("Mr. Prabowo", "Indonesia", ""), ("Mr. Ndoye", "Senegal", "French"),
    ("Mrs. Lora-Santos", "Philippines", ""), ("Mr. Al Ajeeli", "United Arab Emirates", "Arabic"),
    ("Mrs. Kupradze", "Georgia", ""), ("Mr. Mahmoud", "Egypt", "Arabic"),
    ("Mrs. Guerra Tamayo", "Cuba", "Spanish"), _AP, ("Mr. Mansour", "State of Palestine", ""),
    ("Mr. Quintana Aranguren", "Colombia", "Spanish"), ("Mr. Grech", "Malta", ""),
    ("Mr. Cappon", "Israel", ""), ("Mr. Tommo Monthe", "Cameroon", "French"), _AP,
    ("Mrs. Rangasamy", "India", ""), ("Mrs. Ijaz", "Pakistan", ""), _AP,
]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("S-PV-10124.part1.zh.txt", PV10124_ZH),
        ("S-PV-10124.part1.en.txt", PV10124_EN),
        ("S-PV-8422.en.pdf", PV8422),
        ("S-PV-3756.en.pdf", PV3756),
        ("A-79-PV-29.en.pdf", A79PV29),
    ],
)
def test_every_speaker_turn_of_real_records(shared_data, name, expected):
    doc = read_document(shared_data / "un" / name)
    turns = parse_turns(doc)
    assert speech_list(turns) == expected
    check_turns(doc, turns)  # every letter and digit in a heading, a note or the text
    assert turns[0].kind == "procedural"  # the cover page


def test_real_record_turns_lose_nothing(record_turns, shared_data):
    check_turns(read_document(shared_data / "un" / "S-PV-8017.zh.txt"), record_turns)
    headings = [t.heading for t in record_turns if t.kind == "speech"]
    assert headings[10] == "里克罗夫特先生（联合王国）（以英语发言）："


def test_cover_page_and_language_switch():
    doc = Document(
        paragraphs=[
            "主席： 兰道先生/沃尔兹先生 . . . . . . . . （美利坚合众国）",
            "成员： 巴林 . . . . . . . . 南希·阿卜杜拉女士",
            "中国 . . . . . . . . 孙磊先生",
            "议程项目",
            "下午3时10分开会。",
            "主席（以英语发言）：我现在请内边贾先生发言。",
            "内边贾先生（俄罗斯联邦）（以俄语发言）：主席先生，谢谢。",
            "（以英语发言）",
            "我要用英语说几句话。",
            "（以俄语发言）最后，我要回到俄语。",
        ],
        lang="zh",
    )
    turns = parse_turns(doc)
    assert [t.kind for t in turns] == ["procedural", "procedural", "speech", "speech"]
    assert turns[0].paragraphs[0].startswith("主席： 兰道先生")
    nebenzia = turns[3]
    assert nebenzia.heading == "内边贾先生（俄罗斯联邦）（以俄语发言）："
    assert nebenzia.notes == []
    assert nebenzia.paragraphs == [
        "主席先生，谢谢。", "（以英语发言）", "我要用英语说几句话。", "（以俄语发言）",
        "最后，我要回到俄语。",
    ]
    check_turns(doc, turns)
    turns[3].paragraphs.pop()
    with pytest.raises(TextLostError, match="cutting into turns lost 8 letters"):
        check_turns(doc, turns)


def test_a_resumed_meeting_keeps_the_speeches_before_it():
    doc = Document(
        paragraphs=[
            "Mr. Blok (Netherlands): As we gather in this Chamber, we remember them.",
            "The meeting was suspended at 1 p.m.",
            "The meeting resumed at 3.05 p.m.",
            "The President (spoke in French): I give the floor to the representative of Peru.",
        ],
        lang="en",
    )
    assert [(t.kind, t.speaker) for t in parse_turns(doc)] == [
        ("speech", "Mr. Blok"), ("procedural", ""), ("procedural", ""),
        ("speech", "The President"),
    ]


@pytest.mark.parametrize(
    ("lang", "paragraph", "parts"),
    [
        ("en", "(spoke in Russian) We reject this.", ["(spoke in Russian)", "We reject this."]),
        ("en", "We reject this. (spoke in English) I will end in English.",
         ["We reject this.", "(spoke in English)", "I will end in English."]),
        ("en", "We reject this. (spoke in English)", ["We reject this.", "(spoke in English)"]),
        ("en", "As the representative (spoke in Russian) said, no.",
         ["As the representative (spoke in Russian) said, no."]),
        ("en", "We thank the Office (OHCHR). Next.", ["We thank the Office (OHCHR). Next."]),
        ("zh", "我们拒绝。（以英语发言）最后我用英语说。",
         ["我们拒绝。", "（以英语发言）", "最后我用英语说。"]),
    ],
)
def test_language_switch_mid_speech(lang, paragraph, parts):
    """A note where the speaker changes language is a paragraph of its own (issue 19: the
    memory gets it as a procedural unit); one before any text is the turn's language."""
    heading = "Mr. Nebenzia (Russian Federation):" if lang == "en" else "内边贾先生（俄罗斯联邦）："
    doc = Document(paragraphs=[heading + " Thank you.", paragraph], lang=lang)
    turns = parse_turns(doc)
    assert len(turns) == 1
    assert turns[0].notes == [] and turns[0].paragraphs[1:] == parts
    check_turns(doc, turns)
    note = "(spoke in Russian)" if lang == "en" else "（以俄语发言）"
    first = parse_turns(Document(paragraphs=[heading, note, paragraph], lang=lang))[0]
    lead = 1 if parts[0].startswith(("(spoke", "（以")) else 0  # no text before it either
    assert first.notes == [note, *parts[:lead]] and first.paragraphs == parts[lead:]


def test_a_chinese_speech_cut_at_a_line_end_is_joined():
    """Issue 19, class 1: a line end taken for a paragraph end inside a sentence; a speech's
    paragraphs end their sentences, so the cut is undone (not in procedural turns, whose
    lines are titles and lists)."""
    doc = Document(paragraphs=[
        "通过议程",
        "塞浦路斯局势",
        "主席（以英语发言）：我谨代表安理会向秘书处表示衷心感谢。确实，这是",
        "忙碌的一个月。",
        "（以英语发言）",
        "会员国应一道努力，从而",
        "“杜绝向恐怖分子供应武器。”",
    ], lang="zh")
    turns = parse_turns(doc)
    assert turns[0].paragraphs == ["通过议程", "塞浦路斯局势"]
    assert turns[1].paragraphs == [
        "我谨代表安理会向秘书处表示衷心感谢。确实，这是忙碌的一个月。",
        "（以英语发言）",
        "会员国应一道努力，从而“杜绝向恐怖分子供应武器。”",
    ]
    check_turns(doc, turns)
