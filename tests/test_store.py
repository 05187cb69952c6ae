"""The result store: dedup by task id, latency percentiles against numpy, exports."""
import csv
import io
import json

import numpy
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from grid.errors import ConfigError
from grid.messages import Code, Result, ResultRun, TaskRun, encode_result_run, read_results
from grid.store import Added, ResultStore, export_record


def ok(task_id, n=15, factors=(3, 5), job="j1", submitted=100.0, completed=101.5, worker="w1"):
    return Result(task_id, job, str(n), tuple(factors), worker=worker, submitted_at=submitted,
                  started_at=submitted, completed_at=completed)


def error(task_id, code, job="j1"):
    return Result(task_id, job, None, None, int(code), f"failed with {int(code)}", submitted_at=1.0, completed_at=2.0)


@pytest.fixture
def store(tmp_path):
    with ResultStore(tmp_path / "results.db") as s:
        yield s


def test_a_result_is_stored_once_whatever_the_number_of_copies(store):
    assert store.add([ok("a"), ok("b"), ok("a")]).stored == 2
    added = store.add([ok("b", worker="w2"), ok("c")])
    assert (added.stored, added.duplicates) == (1, 1)
    assert [r.task_id for r in store.results()] == ["a", "b", "c"]
    assert next(r for r in store.results() if r.task_id == "b").worker == "w1"


def test_a_later_answer_replaces_a_worker_fault_but_not_a_final_error(store):
    store.add([error("a", Code.WORKER_FAULT), error("b", Code.OVER_BUDGET)])
    added = store.add([ok("a"), ok("b")])
    assert (added.stored, added.duplicates) == (1, 1)
    by_id = {r.task_id: r for r in store.results()}
    assert by_id["a"].factors == (3, 5) and by_id["b"].error_code == Code.OVER_BUDGET


def run(start, count, worker="w1", prefix="t-", job="j1"):
    """The ResultRun the collector reads from a compact bundle of answers to tasks prefix + start, ..."""
    numbers = [15 + 2 * i for i in range(count)]
    tasks = TaskRun(prefix, start, numbers, [str(n) for n in numbers], job, 100.0)
    factors = [[str(f) for f in sympy.factorint(n, multiple=True)] for n in numbers]
    read = read_results(encode_result_run(tasks, factors, [100.0] * count, [101.5] * count, worker))
    assert isinstance(read, ResultRun)
    return read


ids = st.sampled_from(["a", "b", "t-0", "t-1", "t-2", "t-3", "t-5", "t-8", "t-13"])
answers = st.one_of(
    st.builds(ok, ids, worker=st.sampled_from(["w1", "w2", "w3"])),
    st.builds(error, ids, st.sampled_from(list(Code))),
    st.builds(run, st.integers(0, 12), st.integers(1, 5), worker=st.sampled_from(["w1", "w2"])),
)


runs_only = st.builds(run, st.integers(0, 40), st.integers(1, 5), worker=st.sampled_from(["w1", "w2"]))


@settings(max_examples=80, deadline=None)
@given(st.one_of(st.lists(st.lists(answers, max_size=12), max_size=6),
                 st.lists(st.lists(runs_only, max_size=12), max_size=6)))  # only runs: read by windows
def test_dedup_matches_a_reference_model(tmp_path_factory, batches):
    expected: dict[str, Result] = {}
    with ResultStore(tmp_path_factory.mktemp("s") / "r.db") as store:
        for batch in batches:
            stored = offered = 0
            for r in (r for item in batch for r in (item.results() if isinstance(item, ResultRun) else [item])):
                offered += 1
                if r.task_id not in expected or expected[r.task_id].error_code == Code.WORKER_FAULT:
                    expected[r.task_id] = r
                    stored += 1
            assert store.add(batch) == Added(stored, offered - stored)
        assert {r.task_id: r for r in store.results()} == expected
        assert store.counts().total == len(expected)


def test_a_run_is_one_row_and_reads_back_as_its_results(store):
    assert store.add([run(0, 200)]) == Added(200, 0)
    assert store.add([run(100, 200), ok("t-300")]) == Added(101, 100)
    assert [r.task_id for r in store.results()] == [f"t-{i}" for i in range(301)]
    assert store._db.execute("SELECT count(*) FROM runs").fetchone()[0] == 1 + 100 + 1
    assert [r.task_id for r in store.last(3)] == ["t-300", "t-299", "t-298"]
    assert store.latency_percentiles("j1", [50]) == {50: 1.5}


def test_a_store_of_the_older_layout_is_named_not_read(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    sqlite3.connect(path).execute("CREATE TABLE results (task_id TEXT)").connection.commit()
    with pytest.raises(ConfigError, match=r"old.db.*older grid"):
        ResultStore(path, source="result_store")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1e4, allow_nan=False), min_size=1, max_size=60),
       st.lists(st.floats(min_value=0, max_value=100), min_size=1, max_size=4))
def test_latency_percentiles_match_numpy(tmp_path_factory, latencies, percentiles):
    with ResultStore(tmp_path_factory.mktemp("s") / "r.db") as store:
        store.add([ok(f"t{i}", submitted=1000.0, completed=1000.0 + v) for i, v in enumerate(latencies)])
        store.add([ok("other", job="j2", submitted=0.0, completed=1e9)])
        got = store.latency_percentiles("j1", percentiles)
    stored = [(1000.0 + v) - 1000.0 for v in latencies]
    for p in percentiles:
        assert got[p] == pytest.approx(numpy.percentile(stored, p), rel=1e-9, abs=1e-9)


def test_counts_and_percentiles_of_an_empty_store(store):
    assert store.counts().total == 0
    assert store.latency_percentiles() == {50: None, 95: None, 99: None}


def test_counts_by_job_and_code(store):
    store.add([ok("a"), ok("b", job="j2"), error("c", Code.BAD_INPUT), error("d", Code.TOO_LARGE, job="j2")])
    everything = store.counts()
    assert (everything.total, everything.ok, everything.errors) == (4, 2, 2)
    assert everything.by_code == {400: 1, 413: 1}
    assert store.counts("j2").by_code == {413: 1}
    assert store.jobs() == ["j1", "j2"]
    assert [r.task_id for r in store.last(2)] == ["d", "c"]


def test_big_factors_survive_the_store_and_the_export(store):
    p, q = 2**127 - 1, 2**89 - 1
    store.add([ok("big", n=p * q, factors=(q, p))])
    (r,) = store.results()
    assert r.factors == (q, p) and r.n == str(p * q)
    out = io.StringIO()
    store.export(out, "jsonl")
    assert json.loads(out.getvalue())["factors"] == [str(q), str(p)]


def test_export_json_lines_and_csv_of_one_job(store):
    store.add([ok("a"), ok("b", job="j2"), error("c", Code.BAD_INPUT)])
    lines = io.StringIO()
    assert store.export(lines, "jsonl", job="j1") == 2
    records = [json.loads(line) for line in lines.getvalue().splitlines()]
    assert records == [export_record(r) for r in store.results("j1")]
    assert records[0]["latency"] == 1.5
    table = io.StringIO()
    assert store.export(table, "csv", job="j1") == 2
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



def test_a_store_whose_switch_to_wal_is_refused_while_another_process_makes_it_opens_once_it_is_let(tmp_path,
                                                                                                    monkeypatch):
    import sqlite3

    from grid import store as store_module

    real, refusals = store_module._open, []

    def refused_three_times(path):
        if len(refusals) < 3:  # what SQLite answers, without a busy wait, while another process switches the file
            refusals.append(path)
            error = sqlite3.OperationalError("database is locked")
            error.sqlite_errorcode = sqlite3.SQLITE_BUSY
            raise error
        return real(path)

    monkeypatch.setattr(store_module, "_open", refused_three_times)
    with ResultStore(str(tmp_path / "results.db")) as store:
        assert store.counts().total == 0 and len(refusals) == 3
