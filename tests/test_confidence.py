"""Confidence in context (issue 19): a short right pair between sure pairs scores above the
threshold, a wrong pair between the same sure pairs stays below it."""

import pytest

from aligner.align.confidence import rescore
from aligner.align.embed import load_encoder
from aligner.align.sentence_align import DEFAULT_MIN_SCORE, align_sentences
from aligner.models import Bead

ZH = [
    "安全理事会现在开始审议其议程上的项目。",
    "我们必须保护平民，并确保人道主义援助能够畅通无阻地送达所有需要帮助的人。",
    "这种做法必须持续下去。",
    "我们呼吁各方立即停火，回到谈判桌前，寻求持久的政治解决方案。",
    "担任这一职务是我的荣幸。",
    "我谨感谢秘书处的支持。",
]
EN = [
    "The Security Council will now begin its consideration of the item on its agenda.",
    "We must protect civilians and ensure that humanitarian assistance reaches all those in "
    "need without hindrance.",
    "It must be sustained.",
    "We call on all parties to cease fire immediately, return to the negotiating table and "
    "seek a lasting political solution.",
    "It has been a privilege to serve in this capacity.",
    "I thank the Secretariat for its support.",
]


@pytest.fixture(scope="module")
def encoder():
    return load_encoder()


def test_short_right_pairs_between_sure_pairs_are_kept(encoder):
    beads = align_sentences(ZH, EN, encoder)
    assert [(b.zh, b.en) for b in beads] == [((k,), (k,)) for k in range(6)]
    alone = [b.score for b in beads]
    assert min(alone[2], alone[4]) < 0.6  # weak on their own (0.24, 0.53 with USE-m3)
    assert alone[2] < DEFAULT_MIN_SCORE
    scored = [b.score for b in rescore(beads, ZH, EN)]
    assert all(s >= DEFAULT_MIN_SCORE for s in scored)
    assert scored[2] > alone[2] + 0.3


@pytest.mark.parametrize("wrong", ["The meeting rose at 5.10 p.m.", "Bananas are yellow."])
def test_a_wrong_pair_between_sure_pairs_stays_below(encoder, wrong):
    en = EN[:2] + [wrong] + EN[3:]
    beads = align_sentences(ZH, en, encoder)
    scored = rescore(beads, ZH, en)
    middle = [b for b in scored if 2 in b.zh]
    assert all(b.score < DEFAULT_MIN_SCORE for b in middle)
    assert [b.score >= DEFAULT_MIN_SCORE for b in scored if 2 not in b.zh] == [True] * 5


def test_unpaired_beads_and_lone_neighbours():
    zh = ["第一句话在这里。", "第二句话。", "第三句话在这里。", "第四句话在这里。"]
    en = ["The first sentence is here.", "Second.", "The third sentence is here.",
          "The fourth sentence is here."]
    beads = [Bead((0,), (0,), 0.99), Bead((1,), (), 0.0), Bead((), (1,), 0.0),
             Bead((2,), (2,), 0.3), Bead((3,), (3,), 0.99)]
    scored = rescore(beads, zh, en)
    assert scored[1].score == scored[2].score == 0.0
    assert scored[4].score >= DEFAULT_MIN_SCORE
    # a middling pair next to an unpaired sentence gains less from a sure neighbour than one
    # between sure pairs
    between = rescore([beads[0], beads[3], beads[4]], zh, en)[1].score
    assert scored[3].score < between
    assert between >= DEFAULT_MIN_SCORE
