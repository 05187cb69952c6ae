"""The result store's contract, one suite for both backends (a SQLite file; objects in S3 on moto in process): dedup
by task id, latency percentiles against numpy, exports; then what only the SQLite file has.

Where a test reads back, it reads both through the store that wrote and through a new one opened on the same place
(for S3: a reader that did not write, as `grid results` on another machine).
"""
import csv
import io
import itertools
import json
import sqlite3
import uuid

import boto3
import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from grid.errors import ConfigError, StoreEmpty
from grid.wire import Code
from grid.store import Added, export_record, open_store
from grid.store.sqlite import ResultStore
from helpers import answers, error, holding_the_write_lock, ok, reference_model, run

BUCKET = "grid-results"
S3_EXAMPLES = 25  # hypothesis examples on moto (~0.15 s each); the collector's side of S3 dedup, SeenIds, is pure
# logic and has its reference-model test of many examples in test_store_s3.py


class Places:
    """New, empty places for stores of one backend: `places()` gives one at each call."""

    def __init__(self, kind: str, new):
        self.kind, self._new = kind, new

    def __call__(self) -> str:
        return self._new()

    def examples(self, count: int) -> settings:
        return settings(max_examples=count if self.kind == "sqlite" else min(count, S3_EXAMPLES), deadline=None)


@pytest.fixture(params=["sqlite", "s3"])
def place(request, tmp_path):
    if request.param == "sqlite":
        numbers = itertools.count()
        yield Places("sqlite", lambda: str(tmp_path / f"results-{next(numbers)}.db"))
        return
    request.getfixturevalue("aws_env")
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield Places("s3", lambda: f"s3://{BUCKET}/results/{uuid.uuid4().hex[:12]}")


@pytest.fixture
def store(place):
    with open_store(place()) as s:
        yield s


def readers(store):
    """The store itself, and a store opened afresh on its place."""
    yield store
    with open_store(store.location, create=False) as again:
        yield again


def test_a_result_is_stored_once_whatever_the_number_of_copies(store):
    assert store.add([ok("a"), ok("b"), ok("a")]).stored == 2
    added = store.add([ok("b", worker="w2"), ok("c")])
    assert (added.stored, added.duplicates) == (1, 1)
    for reader in readers(store):
        assert [r.task_id for r in reader.results()] == ["a", "b", "c"]
        assert next(r for r in reader.results() if r.task_id == "b").worker == "w1"


def test_a_later_answer_replaces_a_worker_fault_but_not_a_final_error(store):
    store.add([error("a", Code.WORKER_FAULT), error("b", Code.OVER_BUDGET)])
    added = store.add([ok("a"), ok("b")])
    assert (added.stored, added.duplicates) == (1, 1)
    for reader in readers(store):
        by_id = {r.task_id: r for r in reader.results()}
        assert by_id["a"].factors == (3, 5) and by_id["b"].error_code == Code.OVER_BUDGET
        assert reader.counts().by_code == {int(Code.OVER_BUDGET): 1} and reader.counts().total == 2


runs_only = st.builds(run, st.integers(0, 40), st.integers(1, 5), worker=st.sampled_from(["w1", "w2"]))


batches_of_answers = st.one_of(st.lists(st.lists(answers, max_size=12), max_size=6),
                               st.lists(st.lists(runs_only, max_size=12), max_size=6))  # only runs: read by windows


def test_dedup_matches_a_reference_model(place):
    @place.examples(80)
    @given(batches_of_answers)
    def check(batches):
        expected = reference_model(batches)
        with open_store(place()) as store:
            for batch, added in zip(batches, expected.added):
                assert store.add(batch) == added
            for reader in readers(store) if expected.results else [store]:
                assert {r.task_id: r for r in reader.results()} == expected.results
                assert reader.counts().total == len(expected.results)

    check()


def test_runs_read_back_as_their_results_in_arrival_order(store):
    assert store.add([run(0, 200)]) == Added(200, 0)
    assert store.add([run(100, 200), ok("t-300")]) == Added(101, 100)
    for reader in readers(store):
        assert [r.task_id for r in reader.results()] == [f"t-{i}" for i in range(301)]
        assert [r.task_id for r in reader.last(3)] == ["t-300", "t-299", "t-298"]
        assert reader.latency_percentiles("j1", [50]) == {50: 1.5}


def test_a_run_is_one_row_of_the_file(tmp_path):
    with ResultStore(tmp_path / "results.db") as store:
        store.add([run(0, 200)])
        store.add([run(100, 200), ok("t-300")])
    with sqlite3.connect(tmp_path / "results.db") as db:  # the file's layout, as the README describes it
        assert db.execute("SELECT count(*) FROM spans").fetchone()[0] == 1 + 100 + 1


def test_factors_stored_as_the_wire_has_them_and_as_an_older_grid_wrote_them_read_back_the_same(tmp_path):
    stored = [run(0, 3), ok("t-9")]
    with ResultStore(tmp_path / "results.db") as store:
        store.add(stored)
        expected = list(store.results())
    with sqlite3.connect(tmp_path / "results.db") as db:
        texts = [factors for (factors,) in db.execute("SELECT factors FROM spans ORDER BY seq")]
        assert texts == [",".join("*".join(map(str, r.factors)) for r in expected[:3]), "3*5"]
        for seq, text in db.execute("SELECT seq, factors FROM spans").fetchall():  # JSON, as before wire format 3
            older = json.dumps([factors.split("*") if factors else [] for factors in text.split(",")])
            db.execute("UPDATE spans SET factors = ? WHERE seq = ?", (older, seq))
    with ResultStore(tmp_path / "results.db") as store:
        assert list(store.results()) == expected and [r.task_id for r in expected] == ["t-0", "t-1", "t-2", "t-9"]


@pytest.mark.parametrize("table", ["results", "runs"])
def test_a_store_of_an_older_layout_is_named_not_read(tmp_path, table):
    path = tmp_path / "old.db"
    sqlite3.connect(path).execute(f"CREATE TABLE {table} (task_id TEXT)").connection.commit()
    with pytest.raises(ConfigError, match=r"old.db.*older grid"):
        ResultStore(path, source="result_store")


def test_latency_percentiles_match_numpy(place):
    @place.examples(60)
    @given(st.lists(st.floats(min_value=0, max_value=1e4, allow_nan=False), min_size=1, max_size=60),
           st.lists(st.floats(min_value=0, max_value=100), min_size=1, max_size=4))
    def check(latencies, percentiles):
        with open_store(place()) as store:
            store.add([ok(f"t{i}", submitted=1000.0, completed=1000.0 + v) for i, v in enumerate(latencies)])
            store.add([ok("other", job="j2", submitted=0.0, completed=1e9)])
            got = store.latency_percentiles("j1", percentiles)
        stored = [(1000.0 + v) - 1000.0 for v in latencies]
        for p in percentiles:
            assert got[p] == pytest.approx(numpy.percentile(stored, p), rel=1e-9, abs=1e-9)

    check()


def test_counts_and_percentiles_of_an_empty_store(store):
    assert store.counts().total == 0
    assert store.latency_percentiles() == {50: None, 95: None, 99: None}
    assert list(store.results()) == [] and store.last() == [] and store.jobs() == []


def test_a_reader_makes_no_store_where_there_is_none(place):
    location = place()
    with pytest.raises(StoreEmpty, match="no result store there") as raised:
        open_store(location, source="result_store", create=False)
    assert location in str(raised.value) and raised.value.exit_code == 2


def test_counts_by_job_and_code(store):
    store.add([ok("a"), ok("b", job="j2"), error("c", Code.BAD_INPUT), error("d", Code.TOO_LARGE, job="j2")])
    for reader in readers(store):
        everything = reader.counts()
        assert (everything.total, everything.ok, everything.errors) == (4, 2, 2)
        assert everything.by_code == {400: 1, 413: 1}
        assert reader.counts("j2").by_code == {413: 1}
        assert reader.jobs() == ["j1", "j2"]
        assert [r.task_id for r in reader.last(2)] == ["d", "c"]


def test_big_factors_survive_the_store_and_the_export(store):
    p, q = 2**127 - 1, 2**89 - 1
    store.add([ok("big", n=p * q, factors=(q, p))])
    for reader in readers(store):
        (r,) = reader.results()
        assert r.factors == (q, p) and r.n == str(p * q)
        out = io.StringIO()
        reader.export(out, "jsonl")
        assert json.loads(out.getvalue())["factors"] == [str(q), str(p)]


def test_export_json_lines_and_csv_of_one_job(store):
    store.add([ok("a"), ok("b", job="j2"), error("c", Code.BAD_INPUT)])
    for reader in readers(store):
        lines = io.StringIO()
        assert reader.export(lines, "jsonl", job="j1") == 2
        records = [json.loads(line) for line in lines.getvalue().splitlines()]
        assert records == [export_record(r) for r in reader.results("j1")]
        assert records[0]["latency"] == 1.5
        table = io.StringIO()
        assert reader.export(table, "csv", job="j1") == 2
        rows = list(csv.DictReader(io.StringIO(table.getvalue())))
        assert [(r["task_id"], r["factors"], r["error_code"]) for r in rows] == [("a", "3 5", ""), ("c", "", "400")]


def test_an_unknown_export_format_is_named(store):
    with pytest.raises(ConfigError, match="export format 'xml'"):
        store.export(io.StringIO(), "xml")


def test_a_store_that_cannot_be_created_names_the_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="result_store.*cannot open or create"):
        ResultStore(blocker / "results.db", source="result_store")


def test_results_survive_reopening(tmp_path):
    with ResultStore(tmp_path / "r.db") as store:
        store.add([ok("a")])
    with ResultStore(tmp_path / "r.db") as store:
        assert store.counts().ok == 1 and store.add([ok("a")]).duplicates == 1


def test_results_survive_reopening_and_a_second_copy_is_shown_once(place):
    location = place()
    with open_store(location) as store:
        store.add([ok("a"), error("f", Code.WORKER_FAULT)])
    with open_store(location) as store:  # an S3 collector after a restart remembers nothing: readers drop the copy
        store.add([ok("a", worker="w2"), ok("f"), ok("b")])
        assert store.counts().total == 3
        assert {r.task_id: r.worker for r in store.results()} == {"a": "w1", "f": "w1", "b": "w1"}
        assert [r.task_id for r in store.results()] == ["a", "f", "b"]


def test_a_store_whose_switch_to_wal_is_refused_while_another_process_writes_it_opens_once_it_is_let(tmp_path):
    path = tmp_path / "results.db"
    with holding_the_write_lock(path) as lock:
        lock.release_after(0.2)
        with ResultStore(path) as store:
            assert lock.released and store.counts().total == 0
