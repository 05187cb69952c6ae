"""Fuzz targets (issue 13): the wire decoders and the configuration loader, fed anything. A decoder returns what it
decoded or raises MessageError, nothing else, and what it decoded encodes and decodes to the same; the loader returns
a Config or raises a ConfigError (exit 2) that names the parameter, nothing else.

`make test` runs each target on a bounded number of examples (the same ones every run); `make fuzz` runs them longer,
on new examples each time (GRID_FUZZ_EXAMPLES, the profile in conftest.py)."""
from __future__ import annotations

import json

import boto3
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from grid import config
from grid.errors import ConfigError, MessageError
from grid.wire import (FORMAT_VERSION, MAX_INPUT_DIGITS, OLDEST_WRITTEN, Code, Rejected, Result, Results, Task, Tasks,
                       decode_results, decode_tasks, encode_results, encode_tasks)

FUZZ = settings.get_profile("grid-fuzz")
KEYS = ("input", "type", "id", "job", "submitted_at", "v", "tasks", "results", "output", "error", "factors", "code",
        "message", "worker", "inputs", "id_prefix", "id_start", "started_at", "completed_at")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=12)
    | st.sampled_from(["15", "0", "-3", "0x1F", "Decimal", "1e5", "", "7" * 1001]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), inner,
                                                                max_size=5),
    max_leaves=20,
)
names = st.text(min_size=1, max_size=20)
times = st.none() | st.floats(0, 1e11, allow_nan=False)
numbers = st.integers(1, 10**40) | st.integers(1, 10**MAX_INPUT_DIGITS - 1)
tasks = st.lists(st.builds(Task, n=numbers, id=names, job=st.none() | names, submitted_at=times), min_size=1,
                 max_size=5)
numbered = st.builds(Tasks.numbered, names, st.integers(0, 10**6), st.lists(numbers, min_size=1, max_size=5), times)
ok = st.builds(Result, task_id=names, job=st.none() | names, n=st.none() | numbers.map(str),
               factors=st.lists(numbers, max_size=4).map(tuple), worker=st.none() | names, completed_at=times)
failed = st.builds(Result, task_id=names, job=st.none() | names, n=st.none(), factors=st.none(),
                   error_code=st.sampled_from(list(Code)), error_message=st.text(max_size=30))
versions = st.sampled_from([OLDEST_WRITTEN, FORMAT_VERSION])
task_docs = st.builds(lambda t, v: json.loads(encode_tasks(t, v)), tasks | numbered, versions)
result_docs = st.builds(lambda r, v: json.loads(encode_results(r, v)), st.lists(ok | failed, min_size=1, max_size=5),
                        versions)
TEXT_COLUMNS = ("inputs", "factors")  # a compact bundle's columns that travel as one text (format version 3)


@st.composite
def near(draw, docs) -> dict:
    """A valid document with a few of its fields (or its items' fields, or its lists' items) changed or removed."""
    doc = draw(docs)
    for _ in range(draw(st.integers(1, 3))):
        texts = [key for key in TEXT_COLUMNS if isinstance(doc.get(key), str)]
        if texts and draw(st.booleans()):  # a text column's characters: one changed, added or removed
            key = draw(st.sampled_from(texts))
            at = draw(st.integers(0, len(doc[key])))
            doc[key] = doc[key][:at] + draw(st.sampled_from(["", ",", "*", "0", "-", "x", "9" * 1001])) + \
                doc[key][at + draw(st.integers(0, 1)):]
            continue
        lists = [value for value in doc.values() if isinstance(value, list) and value]
        objects = [doc] + [item for items in lists for item in items if isinstance(item, dict)]
        if lists and draw(st.booleans()):
            items = draw(st.sampled_from(lists))
            items[draw(st.integers(0, len(items) - 1))] = draw(json_values)
            continue
        target = draw(st.sampled_from(objects))
        key = draw(st.sampled_from(sorted(set(target) | set(KEYS))))
        if draw(st.booleans()):
            target.pop(key, None)
        else:
            target[key] = draw(json_values)
    return doc


def decoded_tasks(body) -> Tasks | None:
    """The tasks of `body`, checked item by item; None when the decoder refused the message."""
    try:
        decoded = decode_tasks(body, default_id="m", sent_at=1.0)
    except MessageError as e:
        assert e.code in (Code.BAD_INPUT, Code.TOO_LARGE) and str(e)
        return None
    items = list(decoded)  # a Task is checked as it is made: no column holds what the wire refuses
    assert items and all(isinstance(i, Task) or (isinstance(i, Rejected) and i.code in (400, 413) and i.message)
                         for i in items)
    return decoded


def decoded_results(body) -> Results | None:
    try:
        decoded = decode_results(body, default_id="m")
    except MessageError as e:
        assert e.code in (Code.BAD_INPUT, Code.TOO_LARGE) and str(e)
        return None
    assert len(decoded) and all(isinstance(r, Result) for r in decoded)
    return decoded


def same_after_encoding(decoded, encode, decode) -> None:
    try:
        body = encode(decoded)
    except MessageError as e:  # what a decoder read may take more room written the grid's way (a number as text)
        assert e.code == Code.TOO_LARGE
        return
    assert list(decode(body)) == list(decoded)


@FUZZ
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_any_bytes_or_text_decode_or_are_refused(body):
    decoded_tasks(body)
    decoded_results(body)


@FUZZ
@given(json_values | near(task_docs) | near(result_docs))
def test_any_json_document_decodes_or_is_refused(doc):
    body = json.dumps(doc)
    decoded_tasks(body)
    decoded_results(body)


@FUZZ
@given(near(task_docs) | task_docs)
def test_a_task_message_that_decodes_whole_encodes_to_the_same_tasks(doc):
    decoded = decoded_tasks(json.dumps(doc))
    if decoded is not None and not decoded.rejected:
        same_after_encoding(decoded, encode_tasks, lambda body: decode_tasks(body, default_id="x", sent_at=2.0))


@FUZZ
@given(near(result_docs) | result_docs)
def test_a_result_message_that_decodes_encodes_to_the_same_results(doc):
    decoded = decoded_results(json.dumps(doc))
    if decoded is not None:
        same_after_encoding(decoded, encode_results, lambda body: decode_results(body, default_id="x"))


# ---- the configuration loader

PARAMS = st.sampled_from(config.REGISTRY)
texts = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40)
raw_values = (texts | st.sampled_from(["0", "-1", "1e999", "nan", " 7 ", "0x10", "1_000", "\u0661", "sqs://[", "s3://"])
              | st.integers(-(2**70), 2**70).map(str))
code_values = raw_values | st.integers(-(2**70), 2**70) | st.floats() | st.booleans() | st.lists(st.integers(),
                                                                                                  max_size=2)


def loaded_or_named(p: config.Param, source: str, **layers) -> None:
    """A Config whose value of `p` its rule accepts, from `source`; or a ConfigError (exit 2) naming `p`."""
    try:
        cfg = config.load(p.role, **layers)
    except ConfigError as e:
        assert e.exit_code == 2 and f"{p.name}=" in str(e) and source in str(e), str(e)
        return
    assert p.parse(cfg[p.name]) == cfg[p.name] and cfg.source(p.name) == source


@FUZZ
@given(PARAMS, raw_values)
def test_any_text_of_a_parameter_from_the_environment_loads_or_is_named(p, value):
    loaded_or_named(p, f"env {p.env}", environ={p.env: value, "GRID_SSM": "0"})


@FUZZ
@given(PARAMS, code_values)
def test_any_value_of_a_parameter_from_flags_loads_or_is_named(p, value):
    loaded_or_named(p, f"flag {p.flag}", flags={p.name: value}, environ={"GRID_SSM": "0"})


def test_any_text_of_a_parameter_from_ssm_loads_or_is_named(aws_env):
    with mock_aws():
        ssm = boto3.client("ssm")

        @FUZZ
        @given(PARAMS, raw_values)
        def from_ssm(p, value):
            ssm.put_parameter(Name=p.ssm_path("dev"), Value=value, Type="String", Overwrite=True)
            try:
                loaded_or_named(p, f"SSM {p.ssm_path('dev')}", environ={}, ssm_client=ssm)
            finally:
                ssm.delete_parameter(Name=p.ssm_path("dev"))

        from_ssm()
