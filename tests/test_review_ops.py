"""Every review operation on a small review built by hand, where the right answer is known:
what each one makes, each refusal with its code, and confirming a turn leaving its doubtful
pairs for a decision. The same operations over HTTP, on a real record, are in test_review.py."""

from __future__ import annotations

import pytest

from service.errors import ServiceError
from service.review.model import Bead, Review, Section, apply, plan, summary

MIN = 0.5


def build() -> Review:
    """Turn 0: two sure pairs, a doubtful one (0.31), an unpaired Chinese and an unpaired
    English sentence. Turn 1: one pair."""
    review = Review([Section("甲", "A", turn=0), Section("乙", "B", turn=1)], [])
    rows = [
        (0, ["一。", "二。"], ["One.", "Two."], 0.9),
        (0, ["三。"], ["Three."], 0.8),
        (0, ["错。"], ["Wrong."], 0.31),
        (0, ["孤。"], [], None),
        (0, [], ["Alone."], None),
        (1, ["四。"], ["Four."], 0.95),
    ]
    review.beads = [review.new_bead(s, zh, en, score=score) for s, zh, en, score in rows]
    return review


def do(review: Review, **op) -> Review:
    apply(review, plan(review, op, 2000, min_score=MIN))
    return review


STATUS = {"not_same_turn": 409, "no_neighbour": 409, "nothing_to_move": 409,
          "not_unpaired": 409, "not_paired": 409, "empty_pair": 422, "invalid_split": 422,
          "invalid_request": 422, "segment_too_long": 422, "bead_not_found": 404,
          "section_not_found": 404}


def refused(review: Review, code: str, **op) -> None:
    """``op`` is refused with ``code`` and its status, naming the operation where it can;
    the review is left as it was."""
    before = [vars(b).copy() for b in review.beads]
    with pytest.raises(ServiceError) as caught:
        plan(review, op, 2000, min_score=MIN)
    assert (caught.value.code, caught.value.status) == (code, STATUS[code]), caught.value
    if code in ("not_same_turn", "no_neighbour", "empty_pair", "not_unpaired"):
        assert caught.value.message.startswith(f"{op['op']}: "), caught.value.message
    if code == "invalid_request" and "side" in op and op["side"] not in ("zh", "en"):
        assert repr(op["side"]) in caught.value.message
    assert [vars(b) for b in review.beads] == before  # nothing changed


def sides(review: Review) -> list[tuple[list[str], list[str]]]:
    return [(b.zh, b.en) for b in review.beads]


def ids(review: Review) -> list[int]:
    return [b.id for b in review.beads]


def test_confirm_turn_confirms_only_the_sure_pairs():
    review = do(build(), op="confirm_turn", section=0)
    assert [b.status for b in review.beads] == [
        "confirmed", "confirmed", "pending", "pending", "pending", "pending"]
    assert review.beads[0].score == 0.9  # a confirmed pair keeps the aligner's score
    counts = summary(review, MIN)
    assert (counts["confirmed"], counts["doubtful"], counts["unpaired"]) == (2, 1, 2)


def test_confirm_turn_takes_a_pair_at_the_threshold_and_one_the_reviewer_made():
    review = build()
    review.beads[2].score = MIN
    review.beads[1].score = None  # edited by the reviewer: no score, theirs
    do(review, op="confirm_turn", section=0)
    assert [b.status for b in review.beads[:3]] == ["confirmed"] * 3


def test_confirm_turn_leaves_rejected_pairs_and_other_turns():
    review = build()
    review.beads[1].status = "rejected"
    do(review, op="confirm_turn", section=0)
    assert review.beads[1].status == "rejected" and review.beads[5].status == "pending"
    refused(review, "section_not_found", op="confirm_turn", section=7)


def test_move_to_next_moves_the_last_sentence_to_the_front_of_the_next_pair():
    review = build()
    first, second = review.beads[0].id, review.beads[1].id
    do(review, op="move", bead=first, side="en", to="next")
    assert sides(review)[:2] == [(["一。", "二。"], ["One."]), (["三。"], ["Two.", "Three."])]
    assert first not in ids(review) and second not in ids(review)  # both are new beads
    do(review, op="move", bead=review.beads[0].id, side="zh", to="next")
    assert sides(review)[:2] == [(["一。"], ["One."]), (["二。", "三。"], ["Two.", "Three."])]


def test_move_to_prev_moves_the_first_sentence_to_the_end_of_the_previous_pair():
    review = build()
    do(review, op="merge", bead=review.beads[1].id)  # 三。错。 | Three. Wrong.
    do(review, op="move", bead=review.beads[1].id, side="zh", to="prev")
    assert sides(review)[:2] == [(["一。", "二。", "三。"], ["One.", "Two."]),
                                 (["错。"], ["Three.", "Wrong."])]


def test_moving_a_side_away_entirely_leaves_no_empty_bead():
    review = build()
    do(review, op="move", bead=review.beads[1].id, side="zh", to="prev")
    assert sides(review)[:2] == [(["一。", "二。", "三。"], ["One.", "Two."]), ([], ["Three."])]
    do(review, op="move", bead=review.beads[1].id, side="en", to="prev")
    assert sides(review)[0] == (["一。", "二。", "三。"], ["One.", "Two.", "Three."])
    assert len(review.beads) == 5  # the emptied bead is gone
    assert sides(review)[1] == (["错。"], ["Wrong."])


def test_move_refusals():
    review = build()
    refused(review, "nothing_to_move", op="move", bead=review.beads[4].id, side="zh", to="prev")
    refused(review, "no_neighbour", op="move", bead=review.beads[0].id, side="zh", to="prev")
    refused(review, "no_neighbour", op="move", bead=review.beads[5].id, side="en", to="next")
    refused(review, "not_same_turn", op="move", bead=review.beads[4].id, side="en", to="next")
    refused(review, "invalid_request", op="move", bead=review.beads[0].id, side="zh", to="up")
    refused(review, "invalid_request", op="move", bead=review.beads[0].id, side="fr", to="next")


def test_merge_and_its_refusals():
    review = build()
    do(review, op="merge", bead=review.beads[0].id)
    assert sides(review)[0] == (["一。", "二。", "三。"], ["One.", "Two.", "Three."])
    assert review.beads[0].score is None and len(review.beads) == 5
    refused(review, "not_same_turn", op="merge", bead=review.beads[3].id)
    refused(review, "no_neighbour", op="merge", bead=review.beads[4].id)
    refused(review, "bead_not_found", op="merge", bead=999)


def test_split_at_a_sentence_end_inside_a_sentence_and_refused_at_the_ends():
    review = build()
    do(review, op="split", bead=review.beads[0].id, zh=2, en=5)  # after 一。 and One.
    assert sides(review)[:2] == [(["一。"], ["One."]), (["二。"], ["Two."])]
    do(review, op="split", bead=review.beads[1].id, zh=1, en=None)
    assert sides(review)[1:3] == [(["二"], ["Two."]), (["。"], [])]
    bead = review.beads[0].id
    refused(review, "invalid_split", op="split", bead=bead, zh=2, en=4)  # both at the end
    refused(review, "invalid_split", op="split", bead=bead, zh=0, en=0)  # both at the start
    refused(review, "invalid_split", op="split", bead=bead, zh=9, en=0)  # outside the text


def test_pair_unpair_and_their_refusals():
    review = build()
    lone_zh, lone_en = review.beads[3].id, review.beads[4].id
    refused(review, "not_unpaired", op="pair", bead=review.beads[2].id, **{"with": lone_en})
    refused(review, "not_same_turn", op="pair", bead=lone_zh, **{"with": review.beads[5].id})
    do(review, op="pair", bead=lone_en, **{"with": lone_zh})
    assert sides(review)[3] == (["孤。"], ["Alone."]) and len(review.beads) == 5
    do(review, op="unpair", bead=review.beads[2].id)
    assert sides(review)[2:4] == [(["错。"], []), ([], ["Wrong."])]
    refused(review, "not_paired", op="unpair", bead=review.beads[2].id)
    twins = build()
    refused(twins, "not_unpaired", op="pair", bead=twins.beads[3].id,
            **{"with": twins.beads[3].id})


def test_edit_and_its_refusals():
    review = build()
    do(review, op="edit", bead=review.beads[2].id, side="en", text="Right. Really.")
    assert sides(review)[2] == (["错。"], ["Right.", "Really."])
    assert review.beads[2].score is None
    do(review, op="edit", bead=review.beads[2].id, side="en", text="   ")
    assert sides(review)[2] == (["错。"], [])  # a side may be emptied: unpaired
    refused(review, "empty_pair", op="edit", bead=review.beads[2].id, side="zh", text="")
    refused(review, "segment_too_long", op="edit", bead=review.beads[0].id, side="zh",
            text="长" * 2001)
    refused(review, "invalid_request", op="edit", bead=review.beads[0].id, side="zh", text=3)


def test_status_and_its_refusals():
    review = build()
    do(review, op="status", bead=review.beads[2].id, status="rejected")
    assert review.beads[2].status == "rejected" and review.beads[2].score == 0.31
    do(review, op="status", bead=review.beads[2].id, status="confirmed")
    assert review.beads[2].status == "confirmed"
    refused(review, "not_paired", op="status", bead=review.beads[3].id, status="confirmed")
    refused(review, "invalid_request", op="status", bead=review.beads[0].id, status="maybe")
    refused(review, "invalid_request", op="fold", bead=review.beads[0].id)


def test_summary_counts():
    review = build()
    assert summary(review, MIN) == {"beads": 6, "pending": 6, "confirmed": 0, "rejected": 0,
                                    "unpaired": 2, "doubtful": 1}
    review.beads[2].status = "rejected"
    assert summary(review, MIN)["doubtful"] == 0  # decided
    assert summary(review, 0.95)["doubtful"] == 2  # 0.9 and 0.8 below; 0.95 is not


def test_bead_and_review_helpers():
    bead = Bead(1, 0, ["一。", "二。"], ["One.", "Two."])
    assert bead.paired and bead.text("zh") == "一。二。" and bead.text("en") == "One. Two."
    assert not Bead(2, 0, ["一。"], []).paired
    review = build()
    assert Review.from_json(review.to_json()) == review


# -- the store side: versions, history, snapshots, finishing -------------------------------


@pytest.fixture
def reviews(tmp_path):
    from service.memory.factory import open_store
    from service.review.model import Reviews

    store = open_store(tmp_path / "data")
    yield Reviews(store.reviews())
    store.close()


def test_changes_are_versioned_and_a_stale_version_is_refused(reviews):
    rid = reviews.create("S/PV.1", build(), origin="upload", min_score=MIN)
    row, review = reviews.load(rid)
    assert (row.name, row.origin, row.min_score, row.version) == ("S/PV.1", "upload", MIN, 0)
    first = review.beads[0].id
    changed = reviews.change(rid, 0, {"op": "merge", "bead": first}, max_chars=2000, by="ann")
    assert (changed.version, changed.min_score) == (1, MIN)
    assert sides(changed.review)[0] == (["一。", "二。", "三。"], ["One.", "Two.", "Three."])
    with pytest.raises(ServiceError) as stale:
        reviews.change(rid, 0, {"op": "merge", "bead": first}, max_chars=2000)
    assert (stale.value.status, stale.value.code) == (409, "review_changed")
    assert "version 0" in stale.value.message and "1" in stale.value.message
    _, again = reviews.load(rid)
    assert sides(again) == sides(changed.review) and reviews.history(rid) == {
        "edits": 1, "undone": 0}


def test_confirm_turn_through_the_store_uses_the_reviews_threshold(reviews):
    rid = reviews.create("S/PV.2", build(), origin="upload", min_score=0.85)
    changed = reviews.change(rid, 0, {"op": "confirm_turn", "section": 0}, max_chars=2000)
    assert [b.status for b in changed.review.beads][:3] == ["confirmed", "pending", "pending"]


def test_undo_redo_and_nothing_left_to_undo(reviews):
    rid = reviews.create("S/PV.3", build(), origin="upload", min_score=MIN)
    _, review = reviews.load(rid)
    before = sides(review)
    with pytest.raises(ServiceError) as nothing:
        reviews.change(rid, 0, {"op": "undo"}, max_chars=2000)
    assert (nothing.value.status, nothing.value.code) == (409, "nothing_to_undo")
    v = reviews.change(rid, 0, {"op": "unpair", "bead": review.beads[2].id},
                       max_chars=2000).version
    after = sides(reviews.load(rid)[1])
    undone = reviews.change(rid, v, {"op": "undo"}, max_chars=2000)
    assert sides(undone.review) == before == sides(reviews.load(rid)[1])
    assert reviews.history(rid) == {"edits": 0, "undone": 1}
    redone = reviews.change(rid, undone.version, {"op": "redo"}, max_chars=2000)
    assert sides(redone.review) == after and redone.version == 3
    with pytest.raises(ServiceError) as no_redo:
        reviews.change(rid, 3, {"op": "redo"}, max_chars=2000)
    assert no_redo.value.code == "nothing_to_redo"


def test_state_is_the_same_across_a_snapshot(reviews):
    """Past SNAPSHOT_EVERY changes the state is rewritten whole: a fresh reader (no cache)
    sees what the changes made."""
    from service.review.model import SNAPSHOT_EVERY, Reviews

    rid = reviews.create("S/PV.4", build(), origin="upload", min_score=MIN)
    version = 0
    for k in range(SNAPSHOT_EVERY + 3):
        bead = reviews.load(rid)[1].beads[0].id
        status = ("confirmed", "rejected")[k % 2]
        version = reviews.change(rid, version, {"op": "status", "bead": bead,
                                                "status": status}, max_chars=2000).version
    row, review = reviews.load(rid)
    assert row.version == SNAPSHOT_EVERY + 3 and row.snapshot_version == SNAPSHOT_EVERY
    fresh = Reviews(reviews.table).load(rid)[1]
    assert [vars(b) for b in fresh.beads] == [vars(b) for b in review.beads]
    assert fresh.beads[0].status == "confirmed" and fresh.next_id == review.next_id


def test_finish_and_delete(reviews):
    rid = reviews.create("S/PV.5", build(), origin="upload", min_score=MIN)
    with pytest.raises(ServiceError) as stale:
        reviews.finish(rid, 3, "Ann")
    assert stale.value.code == "review_changed"
    row, _ = reviews.finish(rid, 0, "Ann")
    assert row.finished_by == "Ann" and row.finished_at
    assert [r.id for r in reviews.list()] == [rid]
    reviews.delete(rid)
    for call in (lambda: reviews.load(rid), lambda: reviews.delete(rid),
                 lambda: reviews.finish(rid, 0, "Ann"),
                 lambda: reviews.change(rid, 0, {"op": "undo"}, max_chars=2000)):
        with pytest.raises(ServiceError) as gone:
            call()
        assert (gone.value.status, gone.value.code) == (404, "review_not_found")


def test_split_counts_the_space_between_english_sentences_only():
    review = Review([Section("甲", "A", turn=0)], [])
    review.beads = [review.new_bead(0, ["一。", "二。", "三。"], ["One.", "Two.", "Three."],
                                    score=0.9)]
    # after the second sentence: Chinese at 4 (no space), English at 9 ("One. Two." + space)
    do(review, op="split", bead=review.beads[0].id, zh=4, en=9)
    assert sides(review) == [(["一。", "二。"], ["One.", "Two."]), (["三。"], ["Three."])]
    whole = Review([Section("甲", "A", turn=0)], [])
    whole.beads = [whole.new_bead(0, ["一。", "二。"], ["One.", "Two."])]
    bead = whole.beads[0].id
    # the ends are points of the text too: all of one side may go to either half
    do(whole, op="split", bead=bead, zh=0, en=9)  # Chinese all in the second, English first
    assert sides(whole) == [([], ["One.", "Two."]), (["一。", "二。"], [])]
    again = Review([Section("甲", "A", turn=0)], [])
    again.beads = [again.new_bead(0, ["一。", "二。"], ["One.", "Two."])]
    refused(again, "invalid_split", op="split", bead=again.beads[0].id, zh=5, en=1)
    refused(again, "invalid_split", op="split", bead=again.beads[0].id, zh=1, en=10)
    refused(again, "invalid_split", op="split", bead=again.beads[0].id, zh=-1, en=1)
    do(again, op="split", bead=again.beads[0].id, zh=2, en=None)  # at a sentence's very end
    assert sides(again) == [(["一。"], ["One.", "Two."]), (["二。"], [])]


def test_confirm_turn_covers_the_whole_turn_and_only_it():
    review = Review([Section(turn=0), Section(turn=1), Section(turn=2)], [])
    rows = [(0, 0.9), (1, 0.9), (1, 0.2), (1, 0.9), (2, 0.9)]
    review.beads = [review.new_bead(s, [f"{k}。"], [f"{k}."], score=score)
                    for k, (s, score) in enumerate(rows)]
    do(review, op="confirm_turn", section=1)
    assert [b.status for b in review.beads] == [
        "pending", "confirmed", "pending", "confirmed", "pending"]


def test_a_missing_bead_or_partner_is_not_found():
    review = build()
    refused(review, "bead_not_found", op="merge")
    refused(review, "bead_not_found", op="pair", bead=review.beads[3].id)
    refused(review, "invalid_request", op="move", bead=review.beads[0].id, to="next")
    refused(review, "invalid_request", op="move", bead=review.beads[0].id, side="zh")
    refused(review, "invalid_request", op="edit", bead=review.beads[0].id, text="x")


def test_move_to_next_takes_the_last_of_three_sentences():
    review = Review([Section(turn=0)], [])
    review.beads = [review.new_bead(0, ["一。"], ["One.", "Two.", "Three."]),
                    review.new_bead(0, ["二。"], ["Four."])]
    do(review, op="move", bead=review.beads[0].id, side="en", to="next")
    assert sides(review) == [(["一。"], ["One.", "Two."]), (["二。"], ["Three.", "Four."])]


def test_pair_english_before_chinese_and_across_a_pair_between():
    review = Review([Section(turn=0)], [])
    review.beads = [review.new_bead(0, [], ["Alone."]), review.new_bead(0, ["中。"], ["Mid."]),
                    review.new_bead(0, ["孤。"], [])]
    lone_en, middle, lone_zh = (b.id for b in review.beads)
    do(review, op="pair", bead=lone_zh, **{"with": lone_en})
    assert sides(review) == [(["孤。"], ["Alone."]), (["中。"], ["Mid."])]
    assert review.beads[1].id == middle  # the pair between is kept as it was


def test_an_edit_at_the_segment_limit_is_taken():
    review = build()
    apply(review, plan(review, {"op": "edit", "bead": review.beads[0].id, "side": "zh",
                                "text": "长" * 1999 + "。"}, 2000, min_score=MIN))
    assert len(review.beads[0].zh[0]) == 2000


def test_a_spreadsheet_import_replaces_every_bead():
    review = build()
    made = [review.new_bead(0, ["新。"], ["New."], status="confirmed")]
    splice = plan(review, {"op": "import", "build": lambda r: made}, 2000, min_score=MIN)
    assert splice.start == 0 and len(splice.removed) == 6 and splice.added == made
    apply(review, splice)
    assert sides(review) == [(["新。"], ["New."])]


def test_two_readers_of_one_review_see_each_others_changes(reviews):
    """Each ``Reviews`` keeps the states it used; one made stale by a change elsewhere (a
    second worker) is read again from the store."""
    from service.review.model import Reviews

    other = Reviews(reviews.table)
    rid = reviews.create("S/PV.6", build(), origin="upload", min_score=MIN)
    first = reviews.load(rid)[1].beads[0].id
    assert other.load(rid)[1].beads[0].id == first  # cached by both now
    changed = other.change(rid, 0, {"op": "merge", "bead": first}, max_chars=2000)
    mine = reviews.load(rid)[1]
    assert sides(mine) == sides(changed.review) and mine.next_id == changed.review.next_id
    again = reviews.change(rid, 1, {"op": "undo"}, max_chars=2000)
    assert sides(other.load(rid)[1]) == sides(again.review) == sides(build())
