"""The wire codec: round trips, the original's shapes both ways, the compact bundle, and a clear error for every kind
of bad input."""
import json
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from grid.errors import MessageError
from grid.queues.base import MAX_MESSAGE_BYTES
from grid.wire import (
    MAX_BODY_BYTES,
    MAX_INPUT_DIGITS,
    Code,
    Ids,
    Rejected,
    Result,
    Results,
    Same,
    Task,
    Tasks,
    decode_results,
    decode_tasks,
    encode_results,
    encode_tasks,
    pack_results,
    pack_tasks,
    split_id,
)
from grid.wire.fields import plain_factor_text, plain_input_text, plain_texts
from grid.wire.jsontext import parse_json
from grid.wire.model import decimal_text, factor_text



def tasks_of(body, **where) -> list[Task | Rejected]:
    """The items of a task message, in order."""
    return list(decode_tasks(body, **where))


def results_of(body, **where) -> list[Result]:
    return list(decode_results(body, **where))


names = st.text(min_size=1, max_size=128)
times = st.none() | st.floats(0, 1e11, allow_nan=False)
numbers = st.integers(1, 10**MAX_INPUT_DIGITS - 1)
tasks = st.builds(Task, n=numbers, id=names, job=st.none() | names, submitted_at=times)


def results():
    common = dict(task_id=names, job=st.none() | names, worker=st.none() | names,
                  submitted_at=times, started_at=times, completed_at=times)
    ok = st.builds(Result, n=st.none() | numbers.map(str), factors=st.lists(numbers, max_size=6).map(tuple),
                   **common)
    error = st.builds(Result, n=st.none() | st.text(max_size=64), factors=st.none(),
                      error_code=st.sampled_from(list(Code)), error_message=st.text(max_size=200), **common)
    return ok | error


@settings(max_examples=150, deadline=None)
@given(st.lists(tasks, min_size=1, max_size=20))
def test_tasks_round_trip(batch):
    assert tasks_of(encode_tasks(batch), default_id="unused") == batch


@settings(max_examples=150, deadline=None)
@given(st.lists(results(), min_size=1, max_size=20))
def test_results_round_trip(batch):
    assert results_of(encode_results(batch)) == batch


@settings(max_examples=100, deadline=None)
@given(numbers)
def test_integers_travel_as_decimal_strings(n):
    body = json.loads(encode_tasks([Task(n, "t")]))
    assert body["input"] == str(n)
    result = json.loads(encode_results([Result("t", None, str(n), (n,))]))
    assert result["output"]["factors"] == [str(n)]


# The original's shapes (asksac/AWSGridWithSQS), as its README documents them and its daemons sent them: a task
# {"input": "<decimal>", "type": "Decimal"} (its producer sent the input as a JSON number), no id, no submission time;
# a result {"output": {"factors": [...]}, "type": "Decimal"} or {"error": {...}}, its task named only by the
# message attribute requestMessageId.
ORIGINAL_TASKS = ['{"input": "796951910868696778761193", "type": "Decimal"}',
                  '{"input": 796951910868696778761193, "type": "Decimal"}',
                  '{"input": "796951910868696778761193", "type": "decimal"}']
ORIGINAL_RESULTS = [('{"output": {"factors": [3, 5]}, "type": "Decimal", "executionTimeSeconds": 0.1}',
                     Result("req-1", None, None, (3, 5))),
                    ('{"error": {"message": "Invalid JSON in message body", "code": 400}}',
                     Result("req-1", None, None, None, 400, "Invalid JSON in message body"))]


@pytest.mark.parametrize("body", ORIGINAL_TASKS)
def test_the_original_task_is_read_its_time_the_messages_sent_time(body):
    assert tasks_of(body, default_id="sqs-id") == [Task(796951910868696778761193, "sqs-id")]
    assert tasks_of(body, default_id="sqs-id", sent_at=1700000000.25) == [
        Task(796951910868696778761193, "sqs-id", submitted_at=1700000000.25)]


def test_a_task_that_says_when_it_was_submitted_keeps_that_time():
    body = encode_tasks([Task(15, "t1", "j", 100.0), Task(21, "t7", "j")])
    assert [t.submitted_at for t in tasks_of(body, default_id="m", sent_at=200.0)] == [100.0, 200.0]
    compact = encode_tasks(Tasks.numbered("j", 1, [15, 21], None))
    assert [t.submitted_at for t in tasks_of(compact, default_id="m", sent_at=200.0)] == [200.0, 200.0]


def test_one_task_travels_in_the_original_shape_which_the_original_reads():
    body = json.loads(encode_tasks(Tasks.numbered("job", 1, [15], 5.0)))
    assert body["input"] == "15" and body["type"] == "Decimal"  # what the original's worker reads
    assert set(body) == {"input", "type", "v", "id", "job", "submitted_at"}


@pytest.mark.parametrize("body, expected", ORIGINAL_RESULTS)
def test_the_original_result_is_read_with_its_request_message_id(body, expected):
    assert results_of(body, default_id="req-1") == [expected]


@pytest.mark.parametrize("_, result", ORIGINAL_RESULTS)
def test_one_result_travels_in_the_original_shape(_, result):
    doc = json.loads(encode_results([result]))
    original = {"output": {"factors": ["3", "5"]}, "type": "Decimal"} if result.ok else {
        "error": {"message": "Invalid JSON in message body", "code": 400}}
    assert {k: doc[k] for k in original} == original and not {"results", "inputs"} & set(doc)


def test_a_single_task_keeps_the_original_shape_plus_extras():
    body = json.loads(encode_tasks([Task(15, "t1", "job-a", 1700000000.5)]))
    assert body == {"input": "15", "type": "Decimal", "v": 1, "id": "t1", "job": "job-a",
                    "submitted_at": 1700000000.5}


def test_a_result_has_the_original_shape():
    ok = json.loads(encode_results([Result("t1", None, "15", (3, 5), worker="w1")]))
    assert ok["output"] == {"factors": ["3", "5"]} and ok["type"] == "Decimal" and ok["worker"] == "w1"
    error = json.loads(encode_results([Result("t2", None, "x", None, Code.BAD_INPUT, "not a number")]))
    assert error["error"] == {"message": "not a number", "code": 400} and "output" not in error


def test_a_bundle_hoists_what_its_tasks_share():
    batch = [Task(n, f"t{n}", "job-a", 5.0) for n in (4, 6, 9)]
    body = json.loads(encode_tasks(batch))
    assert body["job"] == "job-a" and body["submitted_at"] == 5.0
    assert body["tasks"] == [{"id": "t4", "input": "4"}, {"id": "t6", "input": "6"}, {"id": "t9", "input": "9"}]


def test_bundle_items_without_ids_are_numbered_after_the_message():
    decoded = tasks_of('{"tasks": [{"input": "4"}, {"input": "6"}]}', default_id="m")
    assert [t.id for t in decoded] == ["m:0", "m:1"]


@pytest.mark.parametrize("value, code, words", [
    ('"0x1F"', 400, "not a decimal integer"),
    ('"1e5"', 400, "not a decimal integer"),
    ('" 15 "', 400, "not a decimal integer"),
    ('"15.0"', 400, "not a decimal integer"),
    ('"1_000"', 400, "not a decimal integer"),
    ('"\u0661\u0665"', 400, "not a decimal integer"),  # Arabic-Indic digits, which int() would accept
    ('""', 400, "not a decimal integer"),
    ('"-15"', 400, "positive"),
    ('-15', 400, "positive"),
    ('"0"', 400, "positive"),
    ('0', 400, "positive"),
    ('15.0', 400, "fraction or exponent"),
    ('1e5', 400, "fraction or exponent"),
    ('true', 400, "got true"),
    ('null', 400, "got null"),
    ('{"n": [1, 2]}', 400, "got an object"),
    ('[15]', 400, "got an array"),
    ('"' + "7" * 100_000 + '"', 413, "at most 1000 digits"),
    ("7" * 100_000, 413, "at most 1000 digits"),
])
def test_a_bad_input_is_rejected_with_its_own_code_and_message(value, code, words):
    [rejected] = tasks_of('{"input": %s, "id": "t1", "job": "j"}' % value, default_id="m")
    assert isinstance(rejected, Rejected)
    assert (rejected.id, rejected.job, rejected.code) == ("t1", "j", code)
    assert words in rejected.message and "'input'" in rejected.message and "t1" in rejected.message


@pytest.mark.parametrize("fields, words", [
    ('"id": 5', "'id' must be a string"),
    ('"id": ""', "'id' must be a string"),
    ('"job": ["x"]', "'job' must be a string"),
    ('"submitted_at": "yesterday"', "'submitted_at' must be epoch seconds"),
    ('"submitted_at": -1', "'submitted_at' must be epoch seconds"),
    ('"submitted_at": 1e999', "'submitted_at' must be epoch seconds"),
    ('"type": "Hex"', "'type' must be \"Decimal\""),
])
def test_a_bad_field_is_rejected_and_named(fields, words):
    [rejected] = tasks_of('{"input": "15", %s}' % fields, default_id="m")
    assert isinstance(rejected, Rejected) and rejected.code == 400 and words in rejected.message


def test_a_bad_item_of_a_bundle_does_not_spoil_the_good_ones():
    body = '{"job": "j", "tasks": [{"id": "a", "input": "4"}, {"id": "b", "input": "-4"}, 7, {"id": "c"}]}'
    good, negative, not_object, missing = tasks_of(body, default_id="m")
    assert good == Task(4, "a", "j")
    assert (negative.id, negative.code, negative.job, negative.n) == ("b", 400, "j", "-4")
    assert not_object.id == "m:2" and "must be a JSON object" in not_object.message
    assert missing.id == "c" and "has no 'input'" in missing.message


def test_a_bad_shared_field_rejects_every_item_of_the_bundle():
    decoded = tasks_of('{"job": 5, "tasks": [{"id": "a", "input": "4"}, {"id": "b", "input": "6"}]}',
                           default_id="m")
    assert [(r.id, r.code) for r in decoded] == [("a", 400), ("b", 400)]
    assert all("'job' must be a string" in r.message for r in decoded)


def test_a_rejected_item_becomes_an_error_result():
    [rejected] = tasks_of('{"input": "abc", "id": "t9", "submitted_at": 3}', default_id="m")
    result = rejected.to_result(worker="w", started_at=4.0, completed_at=4.5)
    assert (result.task_id, result.n, result.error_code, result.submitted_at) == ("t9", "abc", 400, 3.0)
    assert results_of(encode_results([result])) == [result]


@pytest.mark.parametrize("body, code, words", [
    ("", 400, "not valid JSON"),
    ("{'input': '15'}", 400, "not valid JSON"),
    ('{"input": "15"', 400, "not valid JSON"),
    ('{"input": "15", "submitted_at": NaN}', 400, "NaN"),
    ("[" * 100_000 + "]" * 100_000, 400, "not valid JSON"),
    ('["15"]', 400, "must be a JSON object, got an array"),
    ('"15"', 400, "must be a JSON object, got a string"),
    ("null", 400, "got null"),
    ('{"v": 4, "input": "15"}', 400, "version"),
    ('{"v": "1", "input": "15"}', 400, "version"),
    ('{"tasks": []}', 400, "non-empty JSON array"),
    ('{"tasks": {"input": "15"}}', 400, "non-empty JSON array"),
    ('{"tasks": [{"input": "15"}], "input": "15"}', 400, "both"),
    ('{"input": "%s"}' % ("1" * MAX_MESSAGE_BYTES), 413, "over the 262144-byte limit"),
])
def test_an_unusable_message_is_a_message_error(body, code, words):
    with pytest.raises(MessageError) as caught:
        tasks_of(body, default_id="m")
    assert caught.value.code == code and words in str(caught.value)


def test_bytes_that_are_not_utf8_are_a_message_error():
    with pytest.raises(MessageError, match="not UTF-8"):
        tasks_of(b'{"input": "\xff15"}', default_id="m")
    assert tasks_of(b'{"input": "15"}', default_id="m") == [Task(15, "m")]


@pytest.mark.parametrize("body, words", [
    ('{"output": {"factors": [3]}, "error": {"message": "x", "code": 500}, "id": "a"}', "exactly one"),
    ('{"id": "a"}', "exactly one"),
    ('{"output": {"factors": "3,5"}, "id": "a"}', "'output' must be"),
    ('{"output": {"factors": ["3", "-5"]}, "id": "a"}', "'factor' must be a positive"),
    ('{"error": {"message": "x", "code": "500"}, "id": "a"}', "'error' must be"),
    ('{"output": {"factors": [3]}}', "'id' must be a string"),
    ('{"results": [{"output": {"factors": [3]}, "id": "a"}, 5]}', "must be a JSON object"),
])
def test_a_bad_result_is_a_message_error(body, words):
    with pytest.raises(MessageError, match=words.replace("(", r"\(")):
        results_of(body)


def test_encoding_more_than_fits_is_a_413_and_packing_splits():
    batch = [Task(10**999 + i, f"task-{i}") for i in range(300)]
    with pytest.raises(MessageError) as caught:
        encode_tasks(batch)
    assert caught.value.code == Code.TOO_LARGE
    bodies = [body for body, _ in pack_tasks(batch, per_message=200)]
    assert all(len(b) <= MAX_BODY_BYTES for b in bodies) and len(bodies) >= 2
    assert [t for b in bodies for t in tasks_of(b, default_id="m")] == batch


def test_packing_respects_the_count_per_message():
    batch = [Task(n, str(n)) for n in range(1, 26)]
    bodies = [body for body, _ in pack_tasks(batch, per_message=10)]
    assert [len(tasks_of(b, default_id="m")) for b in bodies] == [10, 10, 5]
    outcomes = [Result(t.id, None, str(t.n), (t.n,)) for t in batch]
    assert [r for b, _ in pack_results(outcomes) for r in results_of(b)] == outcomes


@pytest.mark.parametrize("make", [
    lambda: Task(0, "t"), lambda: Task(True, "t"), lambda: Task(10**MAX_INPUT_DIGITS, "t"), lambda: Task(5, ""),
    lambda: Task(5, "t", submitted_at=float("nan")), lambda: Result("t", None, "4", (2, 2), error_code=500),
    lambda: Result("t", None, "4", None),
])
def test_values_the_decoder_would_refuse_cannot_be_built(make):
    with pytest.raises(ValueError):
        make()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
    | st.sampled_from(["15", "0", "-3", "0x1F", "Decimal", "1e5"]),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(["input", "type", "id", "job", "submitted_at", "v", "tasks", "results",
                                       "output", "error", "factors", "code", "message", "worker", "inputs",
                                       "id_prefix", "id_start", "started_at", "completed_at"])
                      | st.text(max_size=5), inner, max_size=6),
    max_leaves=25,
)


def _decoders_hold(body):
    for decode in (lambda b: tasks_of(b, default_id="m"), results_of):
        try:
            items = decode(body)
        except MessageError as e:
            assert e.code in (400, 413) and str(e)
        else:
            # every item a checked Task, Rejected or Result: the columns hold nothing they would refuse
            assert items and all(isinstance(i, (Task, Rejected, Result)) for i in items)
            assert all(i.code in (400, 413) and i.message for i in items if isinstance(i, Rejected))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_random_json_gets_a_clear_answer(value):
    _decoders_hold(json.dumps(value))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_random_bytes_and_text_get_a_clear_answer(body):
    _decoders_hold(body)


json_documents = st.recursive(
    st.none() | st.booleans() | st.integers(-10**40, 10**40) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_documents, st.booleans())
@example({"id": "\ud800", "n": 2**64}, True).via("a lone surrogate and a 20-digit integer")
@example([-(2**63) - 1, 2**64 - 1, 2**64], False).via("the edges of orjson's integers")
def test_the_fast_json_reader_reads_what_the_stdlib_reads(value, ascii_only):
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert json.dumps(parse_json(text)) == json.dumps(json.loads(text))  # dumps tells 1 from 1.0


stamps = st.floats(0, 1e11, allow_nan=False)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=20).filter(lambda p: not p[-1:].isdigit()), st.integers(0, 10**6),
       st.lists(numbers, min_size=2, max_size=20), st.none() | names, st.none() | stamps)
def test_tasks_numbered_from_a_prefix_travel_as_the_compact_bundle(prefix, start, ns, job, submitted_at):
    # A prefix ending in a digit has other readings ("1" + "9", "1" + "10" is no run of "" + n): see the test above.
    tasks = [Task(n, f"{prefix}{start + i}", job, submitted_at) for i, n in enumerate(ns)]
    body = encode_tasks(tasks)
    assert json.loads(body)["inputs"] == ",".join(map(str, ns))
    assert tasks_of(body, default_id="m") == tasks


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=20).filter(lambda p: not p[-1:].isdigit()), st.integers(0, 10**6),
       st.lists(st.tuples(numbers, st.lists(numbers, max_size=4), stamps, stamps), min_size=2, max_size=12),
       st.none() | names, st.none() | names, st.none() | stamps)
def test_results_numbered_from_a_prefix_travel_as_the_compact_bundle(prefix, start, items, job, worker, submitted_at):
    # As for tasks: a prefix ending in a digit has other readings ("1" + "999999", "1" + "1000000" is no run).
    results = [Result(f"{prefix}{start + i}", job, str(n), tuple(factors), worker=worker, submitted_at=submitted_at,
                      started_at=started, completed_at=completed)
               for i, (n, factors, started, completed) in enumerate(items)]
    body = encode_results(results)
    doc = json.loads(body)
    assert (doc["v"], doc["inputs"]) == (3, ",".join(str(n) for n, *_ in items))
    assert doc["factors"] == ",".join("*".join(map(str, factors)) for _, factors, *_ in items)
    assert results_of(body) == results


@pytest.mark.parametrize("v, inputs", [(3, "15,x,0,21,"), (2, ["15", "x", "0", 21, ""])])
def test_a_bad_item_of_a_compact_bundle_gets_its_own_answer(v, inputs):
    body = json.dumps({"v": v, "id_prefix": "j-", "id_start": 7, "inputs": inputs})
    items = tasks_of(body, default_id="m")
    assert [type(i).__name__ for i in items] == ["Task", "Rejected", "Rejected", "Task", "Rejected"]
    assert [i.id for i in items] == ["j-7", "j-8", "j-9", "j-10", "j-11"]
    assert "not a decimal integer" in items[1].message and "positive" in items[2].message


@pytest.mark.parametrize("change, words", [
    ({"id_start": -1}, "id_start"),
    ({"id_prefix": 5}, "id_prefix"),
    ({"started_at": [1.0]}, "as many items"),
    ({"factors": [["3", "5"], ["3", "-7"]]}, "positive"),
    ({"factors": [["3", "5"], "35"]}, "factors"),
    ({"completed_at": [2.0, "later"]}, "completed_at"),
    ({"worker": ""}, "worker"),
])
def test_a_bad_compact_result_bundle_of_version_2_is_a_message_error(change, words):
    doc = {"v": 2, "id_prefix": "j-", "id_start": 1, "inputs": ["15", "21"], "factors": [["3", "5"], ["3", "7"]],
           "started_at": [1.0, 1.0], "completed_at": [2.0, 2.0], "worker": "w"}
    with pytest.raises(MessageError, match=words):
        results_of(json.dumps({**doc, **change}))


@pytest.mark.parametrize("change, words", [
    ({"id_start": -1}, "id_start"),
    ({"inputs": ["15", "21"]}, "'inputs' of a version 3 bundle must be a non-empty string"),
    ({"inputs": ""}, "non-empty string"),
    ({"started_at": [1.0]}, "as many items"),
    ({"factors": "3*5"}, "a string of as many results' factors"),
    ({"factors": [["3", "5"], ["3", "7"]]}, "a string of as many results' factors"),
    ({"factors": "3*5,3*-7"}, "positive"),
    ({"factors": "3*5,3**7"}, "'factor' is not a decimal integer: \"\""),
    ({"completed_at": [2.0, "later"]}, "completed_at"),
    ({"worker": ""}, "worker"),
])
def test_a_bad_compact_result_bundle_is_a_message_error(change, words):
    doc = {"v": 3, "id_prefix": "j-", "id_start": 1, "inputs": "15,21", "factors": "3*5,3*7",
           "started_at": [1.0, 1.0], "completed_at": [2.0, 2.0], "worker": "w"}
    assert results_of(json.dumps(doc)) == [Result("j-1", None, "15", (3, 5), None, None, "w", None, 1.0, 2.0),
                                           Result("j-2", None, "21", (3, 7), None, None, "w", None, 1.0, 2.0)]
    with pytest.raises(MessageError, match=re.escape(words)):
        results_of(json.dumps({**doc, **change}))


def test_the_compact_bundle_of_version_2_still_reads():
    tasks = {"v": 2, "id_prefix": "j-", "id_start": 1, "inputs": ["15", "21"], "job": "a", "submitted_at": 5.0}
    assert tasks_of(json.dumps(tasks), default_id="m") == [Task(15, "j-1", "a", 5.0), Task(21, "j-2", "a", 5.0)]
    results = {**tasks, "factors": [["3", "5"], ["3", "7"]], "started_at": [6.0, 6.0], "completed_at": [7.0, 8.0]}
    assert results_of(json.dumps(results)) == [Result("j-1", "a", "15", (3, 5), None, None, None, 5.0, 6.0, 7.0),
                                               Result("j-2", "a", "21", (3, 7), None, None, None, 5.0, 6.0, 8.0)]


@pytest.mark.parametrize("echo", ["1,2", ""])
def test_results_whose_inputs_no_text_column_holds_travel_as_lists(echo):
    results = [Result("t-1", "j", echo, (3, 5), worker="w", started_at=1.0, completed_at=2.0),
               Result("t-2", "j", "21", (3, 7), worker="w", started_at=1.0, completed_at=2.0)]
    body = encode_results(results)
    assert (json.loads(body)["v"], json.loads(body)["inputs"]) == (2, [echo, "21"])
    assert results_of(body) == results


def test_a_result_without_factors_travels_in_the_factor_text():
    tasks = Tasks(Ids("job-", 0, 3), [1, 15, 1], Same("job", 3), Same(5.0, 3))
    body = encode_results(Results.answers(tasks, [[], [3, 5], []], [6.0] * 3, [7.0] * 3, "w"))
    assert json.loads(body)["factors"] == ",3*5,"
    assert [r.factors for r in results_of(body)] == [(), (3, 5), ()]


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["job-", "", "j.7-", "x1", "job-0"]), st.integers(0, 10**6),
       st.lists(st.integers(1, 10**30), min_size=2, max_size=20))
def test_a_compact_bundle_decodes_as_columns_that_match_its_items(prefix, start, numbers):
    tasks = [Task(n, f"{prefix}{start + i}", "j", 100.0) for i, n in enumerate(numbers)]
    body = encode_tasks(tasks)
    columns = decode_tasks(body, default_id="m")
    assert (list(columns.ids), columns.numbers, list(columns.jobs)) == ([t.id for t in tasks], numbers,
                                                                         ["j"] * len(numbers))
    assert list(columns) == tasks and not columns.rejected
    results = [Result(t.id, "j", str(t.n), (t.n,), worker="w", submitted_at=100.0, started_at=100.5,
                      completed_at=101.0 + i) for i, t in enumerate(tasks)]
    [(answer, count)] = pack_results(results)
    read = decode_results(answer)
    assert count == len(numbers) and list(read) == results
    assert read.latencies() == [1.0 + i for i in range(len(numbers))]


def test_columns_encode_as_the_items_they_hold():
    tasks = Tasks(Ids("job-", 7, 3), [15, 21, 35], Same("job", 3), Same(5.0, 3))
    assert tasks_of(encode_tasks(tasks), default_id="m") == [Task(15, "job-7", "job", 5.0), Task(21, "job-8", "job", 5.0),
                                                             Task(35, "job-9", "job", 5.0)]
    assert json.loads(encode_tasks(tasks))["inputs"] == "15,21,35"
    answers = Results.answers(tasks, [[3, 5], [3, 7], [5, 7]], [6.0] * 3, [7.0] * 3, "w")
    assert results_of(encode_results(answers)) == [Result(f"job-{7 + i}", "job", str(n), f, None, None, "w", 5.0, 6.0,
                                                          7.0) for i, (n, f) in enumerate([(15, (3, 5)), (21, (3, 7)),
                                                                                           (35, (5, 7))])]
    assert [count for _, count in pack_tasks(tasks, per_message=2)] == [2, 1]


def test_numbered_tasks_refuse_what_the_wire_refuses():
    with pytest.raises(ValueError, match="Task.n"):
        Tasks.numbered("job", 1, [15, 0], 5.0)
    with pytest.raises(ValueError, match="'id'"):
        Tasks.numbered("j" * 200, 1, [15], 5.0)


def test_a_compact_bundle_with_an_unusual_value_reads_item_by_item():
    body = json.dumps({"v": 2, "id_prefix": "t-", "id_start": 0, "inputs": ["15", "x"], "job": "j"})
    assert [type(item) for item in decode_tasks(body, default_id="m")] == [Task, Rejected]
    results = json.dumps({"v": 2, "id_prefix": "t-", "id_start": 0, "inputs": ["15"], "factors": [[3, 5]],
                          "started_at": [1.0], "completed_at": [2.0]})
    assert results_of(results) == [Result("t-0", None, "15", (3, 5), started_at=1.0, completed_at=2.0)]
    results = json.dumps({"v": 3, "id_prefix": "t-", "id_start": 0, "inputs": "15,x", "factors": "3*5,0007",
                          "started_at": [1.0, 1.0], "completed_at": [2.0, 2.0]})
    assert results_of(results) == [Result("t-0", None, "15", (3, 5), started_at=1.0, completed_at=2.0),
                                   Result("t-1", None, "x", (7,), started_at=1.0, completed_at=2.0)]


def _converted(texts: list) -> list[int] | None:
    """The reference: every text a decimal of a positive number within the digit limit, converted one by one."""
    if not all(type(t) is str and t.isascii() and t.isdigit() and len(t) <= MAX_INPUT_DIGITS for t in texts):
        return None
    numbers = [int(t) for t in texts]
    return numbers if all(n >= 1 for n in numbers) else None


@settings(max_examples=500)
@given(st.lists(st.text(alphabet="0123456789, a\u0663", max_size=5)
                | st.sampled_from(["0", "00", "007", "1", "", ",", "1,2", "9" * 1001, "1" * 1000]) | st.integers(),
                max_size=6))
def test_the_check_of_decimal_texts_on_the_strings_agrees_with_converting_them(texts):
    assert plain_texts(texts) == (_converted(texts) is not None)


@settings(max_examples=1000)
@given(st.text(alphabet="0123456789,* a\u0663", max_size=12) | st.sampled_from(["9" * 1001, "1" * 1000 + ",2"]),
       st.integers(1, 4))
def test_the_checks_of_a_text_column_agree_with_splitting_and_converting_it(text, count):
    inputs = text.split(",")
    assert plain_input_text(text, count) == (len(inputs) == count and _converted(inputs) is not None)
    factors = [f.split("*") if f else [] for f in inputs]
    assert plain_factor_text(text, count) == (len(factors) == count
                                              and _converted([f for fs in factors for f in fs]) is not None)


@settings(max_examples=300)
@given(st.lists(st.lists(st.integers(1, 2**64 - 1) | st.integers(2**64, 2**70), max_size=4), min_size=1, max_size=6))
def test_the_texts_of_int_columns_are_their_decimals_joined(column):
    assert factor_text(column) == ",".join("*".join(str(f) for f in factors) for factors in column)
    numbers = [f for factors in column for f in factors] or [1]
    assert decimal_text(numbers) == ",".join(map(str, numbers))


@settings(max_examples=500)
@given(st.text(alphabet="0123456789x-\u0663", max_size=12))
def test_an_id_reads_as_the_shortest_prefix_and_a_number_without_leading_zeros(task_id):
    match = re.fullmatch(r"(.*?)(0|[1-9][0-9]*)", task_id, re.DOTALL)
    assert split_id(task_id) == (None if match is None else (match[1], int(match[2])))
