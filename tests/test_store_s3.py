"""What only the S3 store has (moto in process): its URLs, its objects, dedup across collectors and its bounded memory.

The behaviour every store shares is tested on both backends in test_store.py.
"""
import gzip
import io
import json
import logging
import re

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from grid import config
from grid.cli import main as grid_main
from grid.errors import ConfigError, StoreError, StoreNotFound
from grid.wire import Code
from grid.store.s3 import S3ResultStore, SeenIds
from grid.store import Added, open_store, parse_store_location
from helpers import answers, error, ok, reference_model, run

BUCKET = "grid-results"
KEY = re.compile(r"runs/[0-9]{8}T[0-9]{6}\.[0-9]{6}Z-[A-Za-z0-9.-]+-[0-9]{8}\.jsonl\.gz")


@pytest.fixture
def s3(aws_env):
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client


def objects(client, prefix="runs/"):
    return [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]


def lines_of(client, key):
    body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return gzip.decompress(body).decode().splitlines()


# ---- the URL


@pytest.mark.parametrize("location, parsed", [
    ("results.db", ("sqlite", "results.db")),
    ("/var/lib/grid/results.db", ("sqlite", "/var/lib/grid/results.db")),
    ("s3://grid-results/runs", ("s3", ("grid-results", "runs"))),
    ("s3://grid-results/dev/runs/", ("s3", ("grid-results", "dev/runs"))),
    ("s3://grid.results-1", ("s3", ("grid.results-1", ""))),
])
def test_a_store_location_is_a_path_or_an_s3_url(location, parsed):
    assert parse_store_location(location) == parsed


@pytest.mark.parametrize("location, why", [
    ("s3://Grid_Results/runs", "not an S3 bucket name"),
    ("s3://ab/runs", "not an S3 bucket name"),
    ("s3://192.168.1.2/runs", "not an S3 bucket name"),
    ("s3://a..b/runs", "not an S3 bucket name"),
    ("s3://user@grid-results/runs", "not an S3 bucket name"),
    ("s3:///runs", "not an S3 bucket name"),
    ("s3://grid-results/a//b", "empty segment"),
    ("s3://grid-results/runs?region=x", "no ?query"),
    ("gs://grid-results/runs", "unknown scheme 'gs'"),
    ("", "give a file path or an s3:// URL"),
])
def test_a_bad_store_location_is_named_with_the_allowed_forms(location, why):
    with pytest.raises(ConfigError, match=re.escape(why)) as raised:
        parse_store_location(location)
    assert repr(location) in str(raised.value) and "s3://bucket/prefix" in str(raised.value)


def test_a_bad_s3_url_is_a_configuration_error_with_exit_code_2(capsys):
    with pytest.raises(ConfigError, match=r"result_store=s3://Bad from flag --result-store: .*not an S3 bucket"):
        config.load("collector", environ={}, flags={"result_store": "s3://Bad"})
    assert grid_main(["results", "--result-store", "s3://Bad/x"]) == 2
    assert "result_store=s3://Bad/x" in capsys.readouterr().err


# ---- writing


def test_each_add_is_one_object_of_spans_and_a_batch_of_duplicates_writes_none(s3):
    with open_store(f"s3://{BUCKET}/runs") as store:
        assert store.add([run(0, 100), ok("a"), error("b", Code.BAD_INPUT), run(100, 50)]) == Added(152, 0)
        assert store.add([run(0, 100), ok("a")]) == Added(0, 101)
        assert store.add([ok("c")]) == Added(1, 0)
    keys = objects(s3)
    assert len(keys) == 2 and all(KEY.fullmatch(k) for k in keys) and keys == sorted(keys)
    first = lines_of(s3, keys[0])
    assert len(first) == 4  # a line a span: the first run, the two lone results, the second run
    spans = [json.loads(line) for line in first]
    assert [(s["id_prefix"], s["id_start"], s["id_stop"]) for s in spans] == [("t-", 0, 100), ("a", -1, 0),
                                                                               ("b", -1, 0), ("t-", 100, 150)]
    assert spans[0]["factors"][0] == ["3", "5"] and spans[0]["inputs"][:2] == ["15", "17"]
    assert (spans[2]["error_code"], spans[2]["factors"]) == (Code.BAD_INPUT, None)
    head = s3.head_object(Bucket=BUCKET, Key=keys[0])
    assert head["Metadata"]["grid-results"] == "152" and head["ContentType"] == "application/gzip"


def test_an_object_is_written_once_and_never_again(s3):
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    with open_store(f"s3://{BUCKET}/runs") as store:
        for i in range(5):
            store.add([ok(f"t-{i}")])
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix="runs/")["Versions"]
    assert len(versions) == 5 and len({v["Key"] for v in versions}) == 5


def test_a_missing_bucket_is_named_with_exit_code_2(s3):
    with pytest.raises(StoreNotFound, match=r"result_store 's3://no-such-bucket/runs': .*bucket 'no-such-bucket' "
                                            r"does not exist") as raised:
        open_store("s3://no-such-bucket/runs", source="result_store")
    assert raised.value.exit_code == 2


def test_a_put_that_fails_raises_and_the_ids_are_not_remembered_as_stored(s3):
    client = boto3.client("s3", config=Config(retries={"max_attempts": 1}))
    store = S3ResultStore(BUCKET, "runs", client=client)

    def unreachable(**kwargs):
        raise EndpointConnectionError(endpoint_url="https://s3.example")

    client.meta.events.register_first("before-send.s3.PutObject", unreachable)
    with pytest.raises(StoreError, match=r"s3://grid-results/runs.*write of runs/.*Could not connect") as raised:
        store.add([ok("a"), run(0, 10)])
    assert raised.value.exit_code == 1 and objects(s3) == []
    client.meta.events.unregister("before-send.s3.PutObject", unreachable)
    assert store.add([ok("a"), run(0, 10)]) == Added(11, 0)  # stored now, not dropped as already seen
    assert store.counts().total == 11


# ---- reading


def test_two_collectors_storing_the_same_tasks_are_read_as_one_answer_each(s3):
    location = f"s3://{BUCKET}/runs"
    with open_store(location) as one, open_store(location) as two:
        assert one.collector != two.collector
        assert one.add([run(0, 10, worker="w1"), ok("x", worker="w1")]) == Added(11, 0)
        assert two.add([run(5, 10, worker="w2"), ok("x", worker="w2"), ok("y", worker="w2")]) == Added(12, 0)
        assert two.add([run(5, 10, worker="w2")]) == Added(0, 10)  # its own copies it drops itself
    with open_store(location, create=False) as reader:
        by_id = {r.task_id: r.worker for r in reader.results()}
        assert reader.counts().total == len(by_id) == 17
        assert [by_id[f"t-{i}"] for i in range(15)] == ["w1"] * 10 + ["w2"] * 5  # the first stored wins
        assert by_id["x"] == "w1" and by_id["y"] == "w2"


def test_a_fault_stored_by_one_collector_is_replaced_by_the_answer_another_stored_later(s3):
    location = f"s3://{BUCKET}/runs"
    with open_store(location) as one, open_store(location) as two:
        one.add([error("a", Code.WORKER_FAULT), ok("b")])
        two.add([ok("a", worker="w2"), error("b", Code.WORKER_FAULT)])
    with open_store(location, create=False) as reader:
        by_id = {r.task_id: r for r in reader.results()}
        assert by_id["a"].worker == "w2" and by_id["a"].ok and by_id["b"].ok
        assert reader.counts().errors == 0


def test_objects_are_listed_across_pages(s3):
    listings, client = [], boto3.client("s3")
    with S3ResultStore(BUCKET, "runs", client=client) as store:
        for i in range(7):
            store.add([ok(f"t-{i}")])
        store.page_size = 2
        client.meta.events.register("after-call.s3.ListObjectsV2", lambda **kw: listings.append(1))
        assert [r.task_id for r in store.results()] == [f"t-{i}" for i in range(7)]
    assert len(listings) == 4


def test_a_reader_fetches_only_new_objects_and_merges_by_key_even_when_a_late_key_sorts_first(s3, monkeypatch):
    location = f"s3://{BUCKET}/runs"
    gets, client = [], boto3.client("s3")
    with open_store(location) as writer, S3ResultStore(BUCKET, "runs", client=client) as reader:
        client.meta.events.register("after-call.s3.GetObject", lambda **kw: gets.append(1))
        writer.add([ok("a", worker="w1")])
        assert reader.counts().total == 1 and len(gets) == 1
        writer.add([ok("b")])
        assert reader.counts().total == 2 and len(gets) == 2
        with open_store(location) as behind, monkeypatch.context() as clock:  # a collector whose clock is behind
            clock.setattr("time.time_ns", lambda: 1_000_000_000 * 10**9)
            behind.add([ok("a", worker="w-behind")])
        assert {r.task_id: r.worker for r in reader.results()}["a"] == "w-behind"
        assert len(gets) == 2 + 3


def test_an_object_that_is_not_results_is_left_out_with_a_warning(s3, caplog):
    location = f"s3://{BUCKET}/runs"
    with open_store(location) as store:
        store.add([ok("a")])
        key = objects(s3)[0].replace("-00000001.", "-00000002.")
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"not gzip")
        s3.put_object(Bucket=BUCKET, Key="runs/notes.txt", Body=b"a file of someone else's")
        s3.put_object(Bucket=BUCKET, Key=key.replace("-00000002.", "-00000003."),
                      Body=gzip.compress(b'{"v": 2, "id_prefix": "x"}\n'))
    with caplog.at_level(logging.WARNING, "grid.store.s3"), open_store(location, create=False) as reader:
        assert [r.task_id for r in reader.results()] == ["a"]
    assert len([r for r in caplog.records if "is not a result object, left out" in r.getMessage()]) == 2


def test_the_export_of_a_store_read_from_s3(s3):
    with open_store(f"s3://{BUCKET}/runs") as store:
        store.add([run(0, 3), ok("a")])
    with open_store(f"s3://{BUCKET}/runs", create=False) as reader:
        out = io.StringIO()
        assert reader.export(out, "jsonl") == 4
    assert [json.loads(line)["task_id"] for line in out.getvalue().splitlines()] == ["t-0", "t-1", "t-2", "a"]


# ---- what a collector remembers


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(answers, max_size=12), max_size=8), st.sampled_from([None, 1, 3]))
def test_seen_ids_drop_what_the_reference_model_drops_until_they_forget(batches, limit):
    """Unbounded, the collector's index drops exactly what a store drops; bounded, it never drops a new answer."""
    seen, expected = SeenIds(limit=limit), reference_model(batches)
    for batch, added in zip(batches, expected.added):
        plan = seen.plan(batch)
        if limit is None:
            assert Added(plan.stored, plan.offered - plan.stored) == added
        else:  # what it drops it stored itself, with a final answer: a store drops it too
            assert plan.offered == added.stored + added.duplicates and plan.stored >= added.stored
        seen.commit(plan)
        assert limit is None or seen.size <= limit


def test_seen_ids_of_a_job_join_into_one_range_whatever_the_order():
    seen = SeenIds()
    order = [7, 3, 0, 9, 1, 8, 2, 6, 4, 5]
    for i in order:
        seen.commit(seen.plan([ok(f"job-{i}")]))
    seen.commit(seen.plan([run(10, 990, prefix="job-")]))
    assert seen.size == 1
    plan = seen.plan([ok("job-500"), run(0, 1000, prefix="job-"), ok("job-1000")])
    assert (plan.stored, plan.offered) == (1, 1002)


def test_seen_ids_forget_the_least_recently_used_prefixes_past_their_limit():
    seen = SeenIds(limit=3)
    for job in ("a-", "b-", "c-"):
        seen.commit(seen.plan([ok(f"{job}1"), ok(f"{job}3")]))  # two ranges each
        assert seen.size <= 3
    assert seen.plan([ok("c-1")]).stored == 0  # the newest is remembered
    assert seen.plan([ok("a-1")]).stored == 1  # the oldest is forgotten: written again, dropped by readers
