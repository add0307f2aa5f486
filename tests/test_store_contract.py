"""The store contract: what every implementation of ``service.memory.store.TMStore`` must do.

``StoreContract`` is the one test class; an implementation passes it by a subclass giving
``make_store`` (``TestSQLiteStore`` and ``TestPostgresStore`` below), and ``other_store``
where a second store on the same memory (as another process would open) is not simply
``make_store`` of the same folder.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from aligner.models import Tag, TranslationUnit, Tuv
from aligner.tmx import TMXError
from service.memory.store import (
    AlreadyImported,
    EditConflict,
    Job,
    MergeRule,
    ReviewNotFound,
    StoreError,
    TMStore,
    UnitGone,
    UnitQuery,
)

XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def tmx_unit(zh: str, en: str, *, tuid: str = "", date: str = "", changed: str = "",
             lang: str = "en-GB", **props: str) -> TranslationUnit:
    """A unit as read from a TMX (so it carries TMX attributes)."""
    attrs = {k: v for k, v in (("tuid", tuid), ("changedate", changed)) if v}
    return TranslationUnit(
        zh, en, "zh-CN", lang, props=dict(props), creationdate=date, attrs=attrs,
        source_tuv=Tuv({XML_LANG: "zh-CN"}), target_tuv=Tuv({XML_LANG: lang}),
    )


class StoreContract:
    """Behaviour any store must show; subclasses provide ``make_store``."""

    def make_store(self, folder: Path) -> TMStore:
        raise NotImplementedError

    def other_store(self, folder: Path) -> TMStore:
        """Another store on the memory ``make_store(folder)`` opened, as another process has."""
        return self.make_store(folder)

    @pytest.fixture
    def store(self, tmp_path):
        store = self.make_store(tmp_path / "data")
        yield store
        store.close()

    # -- imports, merge rules, audit

    def test_merge_keeps_one_unit_and_gains_properties(self, store):
        first = store.import_units([tmx_unit("你好。", "Hello.", **{"x-document": "A/1"})])
        again = store.import_units(
            [tmx_unit("你好。", "Hello.", **{"x-speaker": "主席"}), tmx_unit("你好。", "Hi.")]
        )
        assert (first.imported, again.imported, again.merged) == (1, 1, 1)
        unit = store.get([1])[1]
        assert unit.props == {"x-document": "A/1", "x-speaker": "主席"}
        assert unit.source_lang == "zh-CN" and unit.target_lang == "en-GB"

    def test_keep_both_stores_duplicates(self, store):
        units = [tmx_unit("你好。", "Hello.")] * 2
        result = store.import_units(units, rule=MergeRule.KEEP_BOTH)
        assert (result.imported, result.merged, store.count()) == (2, 0, 2)

    def test_keep_newest_replaces_older_and_skips_older(self, store):
        store.import_units([tmx_unit("开会。", "Meeting.", date="20170101T000000Z")])
        newer = tmx_unit("开会。", "The meeting.", date="20170101T000000Z",
                         changed="20180101T000000Z")
        older = tmx_unit("开会。", "A meeting.", date="20160101T000000Z")
        result = store.import_units([newer, older], rule="keep_newest")
        assert (result.replaced, result.skipped, result.skipped_reasons) == (
            1, 1, {"older_than_stored": 1}
        )
        assert [u.en for u in store.iter_units()] == ["The meeting."]
        assert 1 in store.deleted_since(0)

    def test_by_tuid_replaces_the_unit_with_that_tuid(self, store):
        store.import_units([tmx_unit("甲。", "A.", tuid="t1"), tmx_unit("乙。", "B.", tuid="t2")])
        result = store.import_units([tmx_unit("甲。", "A, revised.", tuid="t1")], rule="by_tuid")
        assert (result.replaced, result.imported) == (1, 0)
        assert sorted(u.en for u in store.iter_units()) == ["A, revised.", "B."]

    def test_every_import_is_audited_failed_ones_too(self, store):
        units = [tmx_unit("一。", "One."), TranslationUnit("", "x")]
        ok = store.import_units(units, source="a.tmx")

        def broken():
            yield tmx_unit("二。", "Two.")
            raise TMXError("line 9: inline tags do not pair")

        with pytest.raises(TMXError):
            store.import_units(broken(), source="b.tmx")
        assert store.count() == 1
        done, failed = store.import_record(ok.import_id), store.imports()[0]
        assert (done.state, done.result["imported"], done.result["skipped"]) == ("done", 1, 1)
        assert done.source == "a.tmx" and done.rule == "merge"
        assert failed.state == "failed" and "do not pair" in failed.error
        assert [u.import_id for u in store.iter_units()] == [ok.import_id]
        assert done.id == ok.import_id and failed.id == ok.import_id + 1
        assert len(done.started) == len(done.finished) == 16 and done.started <= done.finished
        assert done.header is None  # units given, not a file: no header to keep
        assert store.imports()[1].result == done.result == dict(ok)
        assert store.import_record(999) is None

    def test_a_files_header_is_kept_with_its_import(self, store, tmp_path):
        path = tmp_path / "h.tmx"
        path.write_text(
            '<?xml version="1.0" encoding="UTF-8"?>\n<tmx version="1.4"><header '
            'creationtool="Tool" creationtoolversion="9" segtype="sentence" o-tmf="t" '
            'adminlang="en" srclang="zh-CN" datatype="plaintext"><note>kept</note></header>'
            '<body><tu><tuv xml:lang="zh-CN"><seg>一。</seg></tuv><tuv xml:lang="en">'
            '<seg>One.</seg></tuv></tu></body></tmx>', encoding="utf-8")
        result = store.import_tmx(path, source="h.tmx")
        record = store.import_record(result.import_id)
        assert record.header["attrs"]["creationtool"] == "Tool"
        assert record.header["version"] == "1.4" and record.header["extras"]
        assert record.source == "h.tmx" and record.result["imported"] == 1

    def test_skips_are_counted_by_reason(self, store):
        result = store.import_units([TranslationUnit("", "x"), TranslationUnit("y", " "),
                                     TranslationUnit("一。", "x" * 2001), tmx_unit("二。", "Two.")])
        assert result.imported == 1 and result.skipped == 3
        assert sum(result.skipped_reasons.values()) == 3 and len(result.skipped_reasons) == 2

    def test_deletion_needs_a_condition(self, store):
        with pytest.raises(StoreError) as refused:
            store.delete_where(UnitQuery())
        assert (refused.value.code, refused.value.status) == ("empty_query", 400)
        assert "at least one condition" in str(refused.value)

    # -- markup as data

    def test_runs_are_kept_and_plain_text_is_derived(self, store):
        bold, end = Tag("bpt", {"i": "1"}, ["<b>"]), Tag("ept", {"i": "1"}, ["</b>"])
        runs = ["The ", bold, "Council", end]
        unit = tmx_unit("安理会。", "The Council")
        unit.target_runs = runs
        store.import_units([unit, tmx_unit("安理会。", "The Council")])
        with_tags, plain = store.get([1, 2]).values()
        assert with_tags.en == plain.en == "The Council"  # indexes see the same text
        assert with_tags.en_runs == runs and plain.en_runs is None
        assert with_tags.runs("en") == runs and plain.runs("en") == ["The Council"]
        assert with_tags.runs("zh") == ["安理会。"]
        assert with_tags.hash != plain.hash  # the markup is part of the identity
        assert store.get([1])[1].to_translation_unit().target_runs == runs

    # -- maintenance

    def test_edit_with_versions(self, store):
        store.import_units([tmx_unit("你好。", "Hello.")])
        props = store.edit(1, 1, props={"x-document": "A/2"}, changeid="reviser")
        assert (props.id, props.version, props.attrs["changeid"]) == (1, 2, "reviser")
        assert props.attrs["changedate"]
        with pytest.raises(EditConflict) as conflict:
            store.edit(1, 1, props={})  # made on version 1, which is gone
        assert (conflict.value.code, conflict.value.status) == ("edit_conflict", 409)
        assert str(conflict.value).startswith("unit 1 is at version 2, not 1: ")
        generation = store.generation
        text = store.edit(1, 2, en=["Hello there."])
        assert text.id != 1 and text.version == 3 and text.en == "Hello there."
        assert store.generation > generation and 1 in store.deleted_since(generation)
        assert store.replaced_by(1) == text.id
        with pytest.raises(UnitGone) as gone:
            store.edit(1, 2, en=["Hi."])
        assert gone.value.code == "edit_conflict" and gone.value.replaced_by == text.id
        assert gone.value.status == 409 and f"it is now unit {text.id}" in str(gone.value)
        store.delete([text.id])
        with pytest.raises(UnitGone) as deleted:
            store.edit(text.id, 3, en=["Hi."])
        assert (deleted.value.code, deleted.value.status) == ("unit_not_found", 404)
        assert str(deleted.value).startswith(f"no unit {text.id} ")

    def test_edit_puts_each_language_on_its_side(self, store):
        """A unit stored English → Chinese keeps English as its source when either side is
        edited; a Chinese-source unit the same the other way round."""
        english_source = TranslationUnit(
            "Thank you.", "谢谢。", "en-US", "zh-CN", source_tuv=Tuv({XML_LANG: "en-US"}),
            target_tuv=Tuv({XML_LANG: "zh-CN"}))
        store.import_units([tmx_unit("你好。", "Hello."), english_source])
        zh_edit = store.edit(1, 1, zh=["您好。"])
        assert (zh_edit.zh, zh_edit.en, zh_edit.source_lang) == ("您好。", "Hello.", "zh-CN")
        tu = zh_edit.to_translation_unit()
        assert (tu.source, tu.target) == ("您好。", "Hello.")
        en_src = store.edit(2, 1, zh=["多谢。"], en=["Many thanks."])
        assert (en_src.zh, en_src.en, en_src.source_lang) == ("多谢。", "Many thanks.", "en-US")
        tu = en_src.to_translation_unit()
        assert (tu.source, tu.target) == ("Many thanks.", "多谢。")

    def test_edit_refusals_change_nothing(self, store):
        store.import_units([tmx_unit("你好。", "Hello.")])
        for sides, code, status in (({"zh": ["  "]}, "empty_segment", 400),
                                    ({"en": [""]}, "empty_segment", 400),
                                    ({"en": ["x" * 2001]}, "segment_too_long", 422)):
            with pytest.raises(StoreError) as refused:
                store.edit(1, 1, **sides)
            assert (refused.value.code, refused.value.status) == (code, status)
            assert next(iter(sides)) in str(refused.value)  # names the side
        unit = store.get([1])[1]
        assert (unit.zh, unit.en, unit.version) == ("你好。", "Hello.", 1)

    def test_edit_of_a_unit_made_here_dates_it(self, store):
        """Units Concordia made itself (no TMX of their own) get changedate and changeid too;
        an edit leaving the text as it was keeps the id."""
        store.import_units([TranslationUnit("你好。", "Hello.")])
        same = store.edit(1, 1, en=["Hello."], changeid="reviser")
        assert (same.id, same.version) == (1, 2)
        assert same.attrs["changeid"] == "reviser" and len(same.attrs["changedate"]) == 16
        unnamed = store.edit(1, 2, props={"x-note": "checked"})
        assert unnamed.attrs["changeid"] == "reviser"  # the last one named
        assert unnamed.props == {"x-note": "checked"} and unnamed.id == 1

    def test_usage_counts_on_from_the_files_count(self, store):
        unit = tmx_unit("你好。", "Hello.")
        unit.attrs["usagecount"] = "5"
        store.import_units([unit, TranslationUnit("再见。", "Goodbye.")])
        assert store.record_usage(1, "20200101T000000Z").attrs["usagecount"] == "6"
        made_here = store.record_usage(2, "20200101T000000Z")
        assert made_here.attrs == {"usagecount": "1", "lastusagedate": "20200101T000000Z"}
        assert store.record_usage(2, "20200102T000000Z").attrs["usagecount"] == "2"

    def test_a_failed_write_leaves_the_store_writable(self, store):
        store.import_units([tmx_unit("你好。", "Hello.")])
        with pytest.raises(UnitGone):
            store.record_usage(99)
        with pytest.raises(StoreError):
            store.edit(1, 1, en=[" "])
        assert store.record_usage(1).attrs["usagecount"] == "1"  # no transaction left open
        assert store.edit(1, 1, props={"x-note": "ok"}).version == 2

    def test_a_usage_count_that_is_no_number_starts_again(self, store):
        unit = tmx_unit("你好。", "Hello.")
        unit.attrs["usagecount"] = "many"
        store.import_units([unit])
        assert store.record_usage(1).attrs["usagecount"] == "1"

    def test_edit_keeps_markup_and_follows_replacements(self, store):
        bold, end = Tag("bpt", {"i": "1"}, ["<b>"]), Tag("ept", {"i": "1"}, ["</b>"])
        unit = tmx_unit("安理会。", "The Council")
        unit.target_runs = ["The ", bold, "Council", end]
        store.import_units([unit])
        props = store.edit(1, 1, props={"x-note": "n"})
        assert props.en_runs == ["The ", bold, "Council", end] and props.zh_runs is None
        marked = store.edit(1, 2, en=["A ", bold, "Council", end])
        assert marked.en == "A Council" and marked.en_runs == ["A ", bold, "Council", end]
        assert marked.attrs["changedate"] and marked.props == {"x-note": "n"}
        plain = store.edit(marked.id, 3, en=["The Council"])
        assert plain.en_runs is None
        assert store.replaced_by(1) == plain.id  # through every replacement
        assert store.replaced_by(plain.id) is None
        longest = store.edit(plain.id, 4, zh=["长" * 2000])  # the limit itself is allowed
        assert len(longest.zh) == 2000

    def test_an_unnamed_edit_of_a_unit_made_here_names_nobody(self, store):
        store.import_units([TranslationUnit("你好。", "Hello.")])
        edited = store.edit(1, 1, props={"x-note": "n"})
        assert set(edited.attrs) == {"changedate"}

    def test_reviews_not_found(self, store):
        from service.memory.store import ReviewNotFound

        with pytest.raises(ReviewNotFound) as missing:
            store.reviews().delete("nope")
        assert (missing.value.code, missing.value.status) == ("review_not_found", 404)
        assert "nope" in str(missing.value)

    def test_usage_is_counted(self, store):
        store.import_units([tmx_unit("你好。", "Hello.")])
        store.record_usage(1, "20200101T000000Z")
        used = store.record_usage(1, "20200102T000000Z")
        assert used.attrs["usagecount"] == "2" and used.attrs["lastusagedate"] == "20200102T000000Z"
        assert used.version == 1  # a use is not an edit

    def test_delete_by_query(self, store):
        store.import_units(
            [tmx_unit("一。", "One.", **{"x-document": "A/1"}),
             tmx_unit("二。", "Two.", **{"x-document": "A/2", "x-speaker": "主席"}),
             tmx_unit("三。", "Three people.", **{"x-document": "A/2"})],
            source="x.tmx",
        )
        with pytest.raises(StoreError):
            store.delete_where(UnitQuery())
        assert store.delete_where(UnitQuery(document="A/2", contains="people")) == [3]
        assert store.delete_where(UnitQuery(speaker="主席")) == [2]
        assert store.delete_where(UnitQuery(origin="x.tmx")) == [1]
        assert store.count() == 0

    # -- reads

    def test_concordance_total_paging_and_filters(self, store):
        units = [tmx_unit(f"第2370（2017）号决议第{i}段。", f"Resolution 2370 (2017), para {i}.",
                          **{"x-document": f"S/{i % 2}"}) for i in range(7)]
        store.import_units(units)
        page, total = store.concordance("第2370(2017)号", "zh", limit=3, offset=2, count=100)
        assert total == 7 and [u.id for u in page] == [3, 4, 5]
        assert store.concordance("第2370(2017)号", "zh", limit=3, count=4)[1] == 5  # count + 1
        _, in_doc = store.concordance("RESOLUTION", None, document="S/1", count=100)
        assert in_doc == 3

    def test_generation_and_batches(self, store):
        start = store.generation
        store.import_units([tmx_unit("一。", "One."), tmx_unit("二。", "Two.")])
        assert store.generation == start + 1 and store.max_id() == 2
        batches = list(store.iter_segment_batches(after_id=1))
        assert batches == [[(2, "二。", "Two.")]]

    def test_identity_and_id_sequence(self, store, tmp_path):
        store.import_units([tmx_unit("一。", "One."), tmx_unit("二。", "Two.")])
        assert store.identity == store.identity and len(store.identity) >= 16
        assert store.identity != self.make_store(tmp_path / "other").identity
        store.delete([2])  # the newest unit gone: the sequence stays
        assert store.max_id() == 1 and store.last_id() == 2

    def test_bulk_import_of_a_file(self, store, tmp_path):
        from aligner.tmx import write_tmx

        path = tmp_path / "big.tmx"
        write_tmx(path, [TranslationUnit(f"第{i}段。", f"Paragraph {i}.") for i in range(30)])
        seen = []
        result = store.bulk_import_tmx(path, progress=seen.append)
        assert result.imported == 30 and seen[-1] == 30 and store.count() == 30

    def test_stats_count_units_directions_documents_and_speakers(self, store):
        empty = store.stats()
        assert (empty["units"], empty["documents"], empty["speakers"]) == (0, 0, 0)
        assert (empty["directions"], empty["last_import"]) == ({}, "")
        store.import_units([
            tmx_unit("一。", "One.", **{"x-document": "S/1", "x-speaker": "主席"}),
            tmx_unit("二。", "Two.", **{"x-document": "S/1"}),
            tmx_unit("三。", "Three.", lang="en-US", **{"x-document": "S/2", "x-speaker": "法国"}),
            tmx_unit("四。", "Four."),
        ])
        stats = store.stats()
        assert stats["units"] == 4
        assert stats["directions"] == {"zh-CN>en-GB": 3, "zh-CN>en-US": 1}
        assert (stats["documents"], stats["speakers"]) == (2, 2)  # blank ones not counted
        assert stats["last_import"] == store.get([4])[4].created_at != ""
        assert stats["generation"] == store.generation == 1
        assert stats["database_bytes"] > 0

    # -- jobs

    def test_job_table(self, store):
        jobs = store.jobs()
        jobs.insert(Job("a" * 32, "queued", "t0", "t0", {"kind": "import"}, total=5))
        jobs.insert(Job("b" * 32, "queued", "t1", "t1", {}))
        jobs.update("a" * 32, state="running", done=3, memory={"imported": 3})
        job = jobs.get("a" * 32)
        assert (job.state, job.done, job.total, job.memory) == ("running", 3, 5, {"imported": 3})
        assert job.options == {"kind": "import"} and job.to_json()["kind"] == "import"
        assert jobs.active() == ["a" * 32, "b" * 32]
        jobs.update("b" * 32, state="done")
        assert jobs.active() == ["a" * 32] and jobs.get("c" * 32) is None

    def test_job_pair_reports_and_cleanup(self, store):
        jobs = store.jobs()
        jobs.insert(Job("a" * 32, "running", "t0", "t0", {}, total=3))
        for seq in range(3):
            jobs.report("a" * 32, seq, {"pair": seq}, seq + 1, 0)
        jobs.report("a" * 32, 1, {"pair": 1, "again": True}, 3, 1)  # a pair redone
        job = jobs.get("a" * 32, offset=1, limit=1)
        assert job.results == [{"pair": 1, "again": True}] and (job.done, job.failed) == (3, 1)
        jobs.update("a" * 32, state="done")
        assert jobs.finished_before("9999-01-01T00:00:00Z") == ["a" * 32]
        assert jobs.finished_before("2000-01-01T00:00:00Z") == []
        jobs.delete("a" * 32)
        assert jobs.get("a" * 32) is None

    # -- reviews

    def test_review_table(self, store):
        reviews = store.reviews()
        reviews.create("r1", "S/PV.1", "upload", 0.5, "state-0", "2020-01-01T00:00:00Z")
        with reviews.editing("r1") as edit:
            assert (edit.row.version, edit.snapshot()) == (0, "state-0")
            edit.add_journal(1, 0, 1, "added", 7)
            edit.log_edit("merge", 0, "a", "b", "2020-01-02T00:00:00Z", "li")
            edit.set_version(1, "2020-01-02T00:00:00Z")
        with pytest.raises(RuntimeError), reviews.editing("r1") as edit:
            edit.set_version(2, "2020-01-03T00:00:00Z")
            raise RuntimeError("the change failed halfway")  # nothing of it is kept
        with reviews.reading("r1") as read:
            assert read.row.version == 1 and read.journal() == [(0, 1, "added", 7)]
        assert reviews.history("r1") == (1, 0)
        with reviews.editing("r1") as edit:
            assert edit.history_step("undo") == (0, "a", "b")
            assert edit.history_step("undo") is None
        assert reviews.history("r1") == (0, 1)
        with reviews.editing("r1") as edit:
            edit.write_snapshot("state-1", 1)
        with reviews.reading("r1") as read:
            assert read.snapshot() == "state-1" and read.journal() == []
        assert [r.id for r in reviews.list(10)] == ["r1"]
        reviews.delete("r1")
        with pytest.raises(ReviewNotFound):
            reviews.delete("r1")
        with pytest.raises(ReviewNotFound), reviews.reading("r1"):
            pass


    # -- the job queue: claims, leases, cancels through the row

    @staticmethod
    def queued(jobs, *names: str) -> list[str]:
        ids = []
        for number, name in enumerate(names):
            job_id = name * 32
            jobs.insert(Job(job_id, "queued", f"t{number}", f"t{number}", {}, owner="alice"))
            ids.append(job_id)
        return ids

    def test_claims_give_each_job_to_one_worker_oldest_first(self, store):
        jobs = store.jobs()
        first, second = self.queued(jobs, "a", "b")
        one = jobs.claim("w1", 30)
        assert (one.id, one.state, one.worker, one.attempts) == (first, "running", "w1", 1)
        assert one.lease_until > time.time() + 20 and one.owner == "alice"
        assert jobs.claim("w2", 30).id == second
        assert jobs.claim("w3", 30) is None  # both held, leases running
        assert jobs.active() == [first, second]

    def test_concurrent_claims_from_two_stores_never_share_a_job(self, store, tmp_path):
        ids = self.queued(store.jobs(), *"abcdefghijkl")
        other = self.other_store(tmp_path / "data")
        got: dict[str, list[str]] = {"w1": [], "w2": []}
        start = threading.Barrier(2)

        def claim_all(table, worker: str) -> None:
            start.wait()
            while (job := table.claim(worker, 30)) is not None:
                got[worker].append(job.id)

        try:
            threads = [
                threading.Thread(target=claim_all, args=(table, worker))
                for table, worker in ((store.jobs(), "w1"), (other.jobs(), "w2"))
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        finally:
            other.close()
        assert sorted(got["w1"] + got["w2"]) == sorted(ids)  # each once, none twice

    def test_a_lapsed_lease_is_taken_over_and_its_old_holder_can_write_nothing(self, store):
        jobs = store.jobs()
        (job_id,) = self.queued(jobs, "a")
        assert jobs.claim("w1", 0.05).id == job_id
        assert jobs.renew(job_id, "w2", 30) is None  # not w2's
        assert jobs.claim("w2", 30) is None  # w1's lease still runs
        time.sleep(0.1)
        taken = jobs.claim("w2", 30)
        assert (taken.id, taken.worker, taken.attempts) == (job_id, "w2", 2)
        assert jobs.renew(job_id, "w1", 30) is None
        assert not jobs.finish(job_id, "w1", "done") and not jobs.release(job_id, "w1")
        renewed = jobs.renew(job_id, "w2", 30, done=4)
        assert (renewed.done, renewed.state, renewed.cancel_requested) == (4, "running", False)
        assert jobs.finish(job_id, "w2", "done", memory={"imported": 4})
        done = jobs.get(job_id)
        assert (done.state, done.memory) == ("done", {"imported": 4})
        assert jobs.renew(job_id, "w2", 30) is None and jobs.active() == []
        assert jobs.claim("w3", 30) is None

    def test_a_released_job_is_queued_again(self, store):
        jobs = store.jobs()
        (job_id,) = self.queued(jobs, "a")
        jobs.claim("w1", 30)
        assert jobs.release(job_id, "w1")
        assert jobs.get(job_id).state == "queued"
        assert jobs.claim("w2", 30).id == job_id

    def test_cancels_go_through_the_row(self, store):
        jobs = store.jobs()
        waiting, running = self.queued(jobs, "a", "b")
        jobs.claim("w1", 30)  # "a", the oldest
        waiting, running = running, waiting
        assert jobs.request_cancel(waiting).state == "cancelled"
        asked = jobs.request_cancel(running)
        assert (asked.state, asked.cancel_requested) == ("running", True)
        assert jobs.renew(running, "w1", 30).cancel_requested  # what its holder sees
        assert jobs.finish(running, "w1", "cancelled")
        assert jobs.request_cancel(running).state == "cancelled"  # finished: as it was
        assert jobs.request_cancel("f" * 32) is None
        assert jobs.claim("w2", 30) is None

    def test_a_job_in_a_request_is_held_by_its_process(self, store):
        jobs = store.jobs()
        jobs.insert(Job("h" * 32, "running", "t0", "t0", {}, worker="w1",
                        lease_until=time.time() + 30, attempts=1))
        assert jobs.claim("w2", 30) is None
        assert jobs.renew("h" * 32, "w1", 30) is not None

    def test_an_import_records_its_job_and_commits_once(self, store):
        units = [tmx_unit("甲。", "A."), tmx_unit("乙。", "B.")]
        result = store.import_units(units, rule="keep_both", job="j" * 32)
        record = store.job_import("j" * 32)
        assert record is not None and (record.id, record.job) == (result.import_id, "j" * 32)
        assert record.result["imported"] == 2 and store.import_record(record.id).job == "j" * 32
        with pytest.raises(AlreadyImported) as again:
            store.import_units(units, rule="keep_both", job="j" * 32)
        assert again.value.record.id == record.id
        assert store.count() == 2
        assert store.job_import("k" * 32) is None
        assert store.abandon_imports("j" * 32) == 0  # nothing of it still running

    def test_a_failed_import_of_a_job_does_not_count_as_its_import(self, store):
        def broken():
            yield tmx_unit("甲。", "A.")
            raise TMXError("bad.tmx: line 3: broken")

        with pytest.raises(TMXError):
            store.import_units(broken(), job="j" * 32)
        assert store.job_import("j" * 32) is None and store.imports()[0].state == "failed"
        assert store.import_units([tmx_unit("甲。", "A.")], job="j" * 32).imported == 1


class TestSQLiteStore(StoreContract):
    def make_store(self, folder: Path) -> TMStore:
        from service.memory.sqlite import SQLiteStore

        return SQLiteStore(folder)


class TestPostgresStore(StoreContract):
    """The same contract on a throwaway PostgreSQL server (tests/pg.py)."""

    @pytest.fixture(autouse=True)
    def _server(self, postgres_server):
        self.server = postgres_server
        self.urls: dict[Path, str] = {}

    def make_store(self, folder: Path) -> TMStore:
        """The memory of ``folder``: a database of its own, the same one each time."""
        from service.memory.postgres import PostgresStore

        if folder not in self.urls:
            self.urls[folder] = self.server.database()
        return PostgresStore(self.urls[folder])
