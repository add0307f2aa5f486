"""The store contract: what every implementation of ``service.memory.store.TMStore`` must do.

``StoreContract`` is the one test class; an implementation passes it by a subclass giving
``make_store`` (``TestSQLiteStore`` below). A PostgreSQL store adds its own subclass.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aligner.models import Tag, TranslationUnit, Tuv
from aligner.tmx import TMXError
from service.memory.store import (
    EditConflict,
    Job,
    MergeRule,
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
        assert with_tags.hash != plain.hash  # the markup is part of the identity
        assert store.get([1])[1].to_translation_unit().target_runs == runs

    # -- maintenance

    def test_edit_with_versions(self, store):
        store.import_units([tmx_unit("你好。", "Hello.")])
        props = store.edit(1, 1, props={"x-document": "A/2"}, changeid="reviser")
        assert (props.id, props.version, props.attrs["changeid"]) == (1, 2, "reviser")
        assert props.attrs["changedate"]
        with pytest.raises(EditConflict):
            store.edit(1, 1, props={})  # made on version 1, which is gone
        generation = store.generation
        text = store.edit(1, 2, en=["Hello there."])
        assert text.id != 1 and text.version == 3 and text.en == "Hello there."
        assert store.generation > generation and 1 in store.deleted_since(generation)
        assert store.replaced_by(1) == text.id
        with pytest.raises(UnitGone) as gone:
            store.edit(1, 2, en=["Hi."])
        assert gone.value.code == "edit_conflict" and gone.value.replaced_by == text.id
        store.delete([text.id])
        with pytest.raises(UnitGone) as deleted:
            store.edit(text.id, 3, en=["Hi."])
        assert deleted.value.code == "unit_not_found"

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


class TestSQLiteStore(StoreContract):
    def make_store(self, folder: Path) -> TMStore:
        from service.memory.sqlite import SQLiteStore

        return SQLiteStore(folder)
