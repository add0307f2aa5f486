"""Matching as a CAT tool does it: normal form, placeables, edit operations, concordance,
language variants; the cases the issue reported, through the API on real UN sentences."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from aligner.models import TranslationUnit
from aligner.tmx import write_tmx
from service.config import Settings
from service.memory.matching import adapt, edit_operations, fold, placeable_differences, placeables
from service.web.app import create_app
from tests.test_api import KEY, import_file
from tests.test_store import unpc_units

RESOLUTION_ZH = "安全理事会第2370（2017）号决议获得一致通过。"
RESOLUTION_EN = "Security Council resolution 2370 (2017) was adopted unanimously."
FUNDING_ZH = "该项目获得1.29亿美元资金，用于2017年8月2日之前的活动。"
FUNDING_EN = "The project received $1.29 billion for activities before 2 August 2017."


def test_fold_makes_width_punctuation_quotes_and_spaces_one():
    assert fold("（2017）") == fold("(2017)") == "(2017)"
    assert fold("“第２段”") == fold('"第2段"')
    assert fold("决 议 草 案") == "决议草案"
    assert fold("Ｕｎｉｔｅｄ  Nations — ‘one’") == "United Nations - 'one'"


def test_placeables_and_adapted_target():
    text = "见S/RES/2370 (2017)，2017年8月2日，1.29亿，{1/}"
    found = [(p.kind, p.text) for p in placeables(text)]
    assert found == [("symbol", "S/RES/2370 (2017)"), ("date", "2017年8月2日"),
                     ("number", "1.29"), ("tag", "{1/}")]
    query = FUNDING_ZH.replace("1.29", "1.5")
    assert placeable_differences(query, FUNDING_ZH) == {"missing": ["1.5"], "extra": ["1.29"]}
    assert placeable_differences("第2,370号", "第2370号") == {"missing": [], "extra": []}
    assert adapt(query, FUNDING_ZH, FUNDING_EN) == FUNDING_EN.replace("1.29", "1.5")
    # Not safe: the number is not in the target as written, or the texts differ otherwise.
    assert adapt("第3段。", "第2段。", "Paragraph two.") is None
    assert adapt("第3段获得通过。", "第2段。", "Paragraph 2.") is None


def test_placeables_positions_tags_and_keys():
    text = "{1}Paragraph 12{/1} of 1,500 and {2/}."
    found = [(p.kind, p.text, p.key, text[p.start:p.end]) for p in placeables(text)]
    assert found == [("tag", "{1}", "{1}", "{1}"), ("number", "12", "12", "12"),
                     ("tag", "{/1}", "{/1}", "{/1}"), ("number", "1,500", "1500", "1,500"),
                     ("tag", "{2/}", "{2/}", "{2/}")]
    # a tag's digits are no number; without tags the text is read as it is
    assert [p.kind for p in placeables("{12}")] == ["tag"]
    assert [(p.kind, p.start) for p in placeables("at 3 and 4")] == [("number", 3),
                                                                      ("number", 9)]


def test_adapt_only_where_the_numbers_are_all_that_differ():
    source, target = "第2段和第3段。", "Paragraphs 2 and 3."
    assert adapt("第2段和第4段。", source, target) == "Paragraphs 2 and 4."  # after an equal one
    assert adapt("第5段和第3段。", source, target) == "Paragraphs 5 and 3."
    assert adapt(source, source, target) is None  # nothing to change
    assert adapt("第2段。", "第2段和第3段。", target) is None  # fewer numbers
    assert adapt("第段。", "第段。", "Paragraph.") is None  # no numbers at all
    assert adapt("第1段和第3段。", "第2段和第3段。", "Paragraph 2, 2 and 3.") is None  # twice
    # the texts around the numbers must be the same, in the same places
    assert adapt("第2段或第4段。", source, target) is None
    assert adapt("2第段和第4段。", source, target) is None


def test_edit_operations_mark_what_differs():
    ops = edit_operations("resolution 2370 (2017)", "resolution 2371 (2017)")
    assert [o["op"] for o in ops] == ["equal", "replace", "equal"]
    assert ops[1] == {"op": "replace", "q": [14, 15], "s": [14, 15]}


@pytest.fixture(scope="module")
def client(tmp_path_factory, shared_data):
    base = tmp_path_factory.mktemp("matching")
    main = [
        *unpc_units(shared_data, 300),
        TranslationUnit(RESOLUTION_ZH, RESOLUTION_EN, props={"x-document": "S/PV.8017"}),
        TranslationUnit(FUNDING_ZH, FUNDING_EN, props={"x-speaker": "主席"}),
        TranslationUnit("艺术与文化。", "Art and culture.", props={"x-document": "A/1"}),
    ]
    charter = "《宪章》的原则。"
    british = TranslationUnit(charter, "The principles of the Charter.", "zh-CN", "en-GB")
    american = TranslationUnit(charter, "The principles of the Charter!")
    settings = Settings(data_dir=base / "data", api_key=KEY, encoder="none")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        for name, units, target in (("main", main, "en-US"), ("gb", [british], "en-GB"),
                                    ("us", [american], "en-US")):
            path = base / f"{name}.tmx"
            write_tmx(path, units, target_lang=target)
            import_file(client, {"file": (path.name, path.read_bytes())})
        yield client


def best(client, text, lang, **more):
    body = {"text": text, "source_lang": lang, "min_fuzzy": 50, **more}
    answer = client.post("/tm/lookup", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()["matches"]


def conc(client, **params) -> dict:
    answer = client.get("/tm/concordance", params={"total": True, **params})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_full_width_brackets_score_100(client):
    match = best(client, RESOLUTION_ZH.replace("（2017）", "(2017)"), "zh")[0]
    assert (match["fuzzy"], match["identical"]) == (100, False)
    assert not match["placeables"]["differ"]
    assert best(client, RESOLUTION_ZH, "zh")[0]["identical"]


def test_a_changed_number_is_flagged_with_the_target_adapted(client):
    query = FUNDING_ZH.replace("1.29", "1.5")
    match = best(client, query, "zh")[0]
    assert match["fuzzy"] >= 90
    assert match["placeables"] == {"differ": True, "missing": ["1.5"], "extra": ["1.29"]}
    assert match["adapted_target"] == FUNDING_EN.replace("1.29", "1.5")
    replaced = [o for o in match["edits"] if o["op"] != "equal"]
    assert replaced and all(query[o["q"][0] : o["q"][1]] in "1.5" for o in replaced)


def test_variant_asked_for_comes_first(client):
    gb = best(client, "The principles of the Charter.", "en-GB", target_lang="zh-CN")
    assert gb[0]["source_lang"] == "en-GB" and gb[0]["fuzzy"] == 100
    us = best(client, "The principles of the Charter?", "en-US")
    assert us[0]["source_lang"] == "en-US"  # same score (one mark differs), variant wins


def test_concordance_ignores_width_and_case_and_counts(client):
    wide = conc(client, term="第2370（2017）号决议")
    narrow = conc(client, term="第2370(2017)号决议")
    assert wide["total"] == narrow["total"] == 1
    assert [u["id"] for u in wide["units"]] == [u["id"] for u in narrow["units"]]
    hit = narrow["units"][0]
    assert hit["source"][slice(*hit["source_hits"][0])] == "第2370（2017）号决议"
    upper = conc(client, term="SECURITY COUNCIL")
    lower = conc(client, term="security council")
    assert upper["total"] == lower["total"] > 1


def test_concordance_whole_words_paging_and_filters(client):
    inside = conc(client, term="art", lang="en")
    whole = conc(client, term="art", lang="en", whole_word=True)
    assert any("Charter" in u["target"] or "Charter" in u["source"] for u in inside["units"])
    assert [u["target"] for u in whole["units"]] == ["Art and culture."]
    assert whole["total"] == 1 and inside["total"] > 1
    page = conc(client, term="the", lang="en", limit=5, offset=5)
    first = conc(client, term="the", lang="en", limit=10)
    assert [u["id"] for u in page["units"]] == [u["id"] for u in first["units"][5:]]
    assert page["total"] == first["total"] > 10
    doc = conc(client, term="2370", document="S/PV.8017")
    assert doc["total"] == 1
    speaker = conc(client, term="1.29", speaker="主席")
    assert speaker["total"] == 1


def test_fold_normalises_full_width_and_compatibility_characters_as_nfkc_does():
    # Full-width forms are made half-width first; whatever else NFKC changes (a combining
    # accent composing with the letter before it, ligatures, the ideographic space) still is.
    assert fold("（２０１７）") == "(2017)"
    assert fold("Ｅ\u0301ＴＡＴ") == "ÉTAT"
    assert fold("ﬁnal\u3000report") == "final report"
    assert fold("决议，“第２段”。") == '决议,"第2段".'
