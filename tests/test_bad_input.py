"""Every kind of bad input gets its documented answer (issue 13), in one table: each row names the kind of input, the
input, where it enters the grid and the answer the README documents. A task message: an error result with its code
(400 bad input, 413 too large, 422 over the work budget), and the worker goes on. A result message: left for the
dead-letter queue, one error line, and the collector goes on. A parameter, a broker URL, a missing queue or a command's
arguments: one line on stderr and exit code 2 (a warning and exit 0 for what is only suspicious). Never a traceback.

Each entry is the real one: the decoder, and a worker's and a collector's steps on the embedded queue; `grid` itself,
in process (`grid.cli.main`) and, for a few rows, the installed script; SSM Parameter Store through moto in process.
"""
from __future__ import annotations

import io
import logging
import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
import sympy
from moto import mock_aws

from grid import config
from grid.cli import main
from grid.client import Client
from grid.daemons.collector import Collector
from grid.daemons.worker import Worker
from grid.errors import ConfigError, MessageError
from grid.metrics import Metrics
from grid.queues import open_broker
from grid.queues.base import MAX_MESSAGE_BYTES, SendEntry
from grid.store import open_store
from grid.wire import REQUEST_MESSAGE_ID, Code, Rejected, decode_results, decode_tasks

WORK_BUDGET = 2.0  # seconds: far beyond any small task here, even on a loaded machine; far below what HARD takes
HARD = sympy.nextprime(2**89) * sympy.nextprime(2**90)  # 90-bit factors: minutes of work at the least
SCRIPT_TIMEOUT = 120  # seconds a `grid` process may take to answer (a loaded 2-core machine)


@dataclass(frozen=True)
class Bad:
    """One kind of bad input: `what` it is, where it enters (`entry`, a key of ENTRIES), the input, and the documented
    answer: `code` (a message's wire error code, None where the task is answered; a command's exit code) and `words`
    its message holds. In a message body, TID stands for a task id of the row's own; `task` names the task whose
    answer it is ({message}: the message's id, which is the default)."""

    what: str
    entry: str
    input: object
    code: int | None
    words: str | tuple[str, ...] = ()
    task: str = "{message}"
    attributes: dict = field(default_factory=dict)
    role: str = "worker"
    stdin: str | None = None

    def holds(self, text: str) -> bool:
        return all(w in text for w in ((self.words,) if isinstance(self.words, str) else self.words))


def task(what: str, body: str, code: int | None, words: str = "", task: str = "{message}", **kw) -> Bad:
    return Bad(what, "task message", body, code, words, task, **kw)


TASK_BODIES = [
    task("malformed JSON", "{not json", 400, "not valid JSON"),
    task("a body that is not a JSON object", '["15"]', 400, "must be a JSON object, got an array"),
    task("JSON nested too deeply", "[" * 50_000 + "]" * 50_000, 400, "nested too deeply"),
    task("NaN where a number goes", '{"input": "15", "submitted_at": NaN}', 400, "NaN"),
    Bad("bytes that are not UTF-8", "task bytes", b'{"input": "\xff15"}', 400, "not UTF-8"),
    Bad("an empty body", "task bytes", "", 400, "not valid JSON"),
    Bad("a body over the size limit", "task bytes", '{"input": "%s"}' % ("1" * MAX_MESSAGE_BYTES), 413,
        "over the 262144-byte limit"),
    task("an input of the wrong type: a boolean", '{"input": true, "id": "TID"}', 400, "got true", "TID"),
    task("an input of the wrong type: an object", '{"input": {"n": 15}, "id": "TID"}', 400, "got an object", "TID"),
    task("an input with a fraction", '{"input": 15.5, "id": "TID"}', 400, "fraction or exponent", "TID"),
    task("a negative number", '{"input": "-15", "id": "TID"}', 400, "must be a positive integer", "TID"),
    task("a negative JSON number", '{"input": -15, "id": "TID"}', 400, "must be a positive integer", "TID"),
    task("zero", '{"input": "0", "id": "TID"}', 400, "must be a positive integer", "TID"),
    task("a hexadecimal number", '{"input": "0x1F", "id": "TID"}', 400, "not a decimal integer", "TID"),
    task("digits and spaces", '{"input": " 15 ", "id": "TID"}', 400, "not a decimal integer", "TID"),
    task("digits that are not ASCII", '{"input": "\\u0661\\u0665", "id": "TID"}', 400, "not a decimal integer", "TID"),
    task("a number of 1001 digits", '{"input": "%s", "id": "TID"}' % ("7" * 1001), 413, "at most 1000 digits", "TID"),
    task("a JSON integer of 5000 digits", '{"input": %s, "id": "TID"}' % ("7" * 5000), 413, "at most 1000 digits",
         "TID"),
    task("a huge number over the work budget", '{"input": "%d", "id": "TID"}' % HARD, 422, "over the work budget",
         "TID"),
    task("a task without an input", '{"id": "TID", "type": "Decimal"}', 400, "has no 'input'", "TID"),
    task("an id of the wrong type", '{"input": "15", "id": 5}', 400, "'id' must be a string"),
    task("an id too long", '{"input": "15", "id": "%s"}' % ("i" * 129), 400, "'id' must be a string of 1..128"),
    task("a job of the wrong type", '{"input": "15", "id": "TID", "job": ["x"]}', 400, "'job' must be a string",
         "TID"),
    task("a negative submission time", '{"input": "15", "id": "TID", "submitted_at": -1}', 400,
         "'submitted_at' must be epoch seconds", "TID"),
    task("a submission time of the wrong type", '{"input": "15", "id": "TID", "submitted_at": "yesterday"}', 400,
         "'submitted_at' must be epoch seconds", "TID"),
    task("an unknown type", '{"input": "15", "id": "TID", "type": "Hex"}', 400, "'type' must be \"Decimal\"", "TID"),
    task("an unknown format version", '{"v": 4, "input": "15"}', 400, "format version v=4 is not supported"),
    task("a format version of the wrong type", '{"v": "1", "input": "15"}', 400, 'format version v="1"'),
    task("an empty bundle", '{"tasks": []}', 400, "'tasks' must be a non-empty JSON array"),
    task("an empty compact bundle", '{"v": 2, "id_prefix": "TID-", "id_start": 1, "inputs": []}', 400,
         "'inputs' must be a non-empty JSON array"),
    task("a bundle that is not an array", '{"tasks": {"input": "15"}}', 400, "non-empty JSON array"),
    task("a bundle and a single task at once", '{"tasks": [{"input": "15"}], "input": "15"}', 400, "both"),
    task("a bundle item that is not an object", '{"tasks": [{"id": "TID", "input": "4"}, 7]}', 400,
         "must be a JSON object, got an integer", "{message}:1"),
    task("a bad item among good ones in a compact bundle",
         '{"v": 2, "id_prefix": "TID-", "id_start": 1, "inputs": ["15", "-3", "21"]}', 400,
         "must be a positive integer", "TID-2"),
    task("a compact bundle of version 3 whose inputs are a list",
         '{"v": 3, "id_prefix": "TID-", "id_start": 1, "inputs": ["15"]}', 400,
         "'inputs' of a version 3 bundle must be a non-empty string of decimal numbers joined by commas"),
    task("a bad item among good ones in a compact bundle of version 3",
         '{"v": 3, "id_prefix": "TID-", "id_start": 1, "inputs": "15,,21"}', 400,
         "'input' is not a decimal integer", "TID-2"),
    task("a compact bundle whose ids start below 0", '{"v": 2, "id_prefix": "TID-", "id_start": -1, "inputs": ["15"]}',
         400, "'id_start' (an integer >= 0)"),
    task("a bad field every item of a bundle shares", '{"job": 5, "tasks": [{"id": "TID", "input": "4"}]}', 400,
         "'job' must be a string", "TID"),
    task("a message attribute a task does not take", '{"input": "15", "id": "TID"}', None, task="TID",
         attributes={REQUEST_MESSAGE_ID: "not-a-result"}),
]


def result(what: str, body: str, words: str, **kw) -> Bad:
    return Bad(what, "result message", body, Code.BAD_INPUT, words, **kw)


RESULT_BODIES = [
    result("a result that is not JSON", "{not json", "not valid JSON"),
    result("a result with neither output nor error", '{"id": "TID"}', "exactly one of 'output' and 'error'"),
    result("an error code of the wrong type", '{"id": "TID", "error": {"message": "x", "code": "500"}}',
           "'error' must be"),
    result("an error code too large for any store", '{"id": "TID", "error": {"message": "x", "code": %d}}' % 10**23,
           "is not an error code: must be 100..599"),
    result("factors that are not a list", '{"id": "TID", "output": {"factors": "3,5"}}', "'output' must be"),
    result("a negative factor", '{"id": "TID", "output": {"factors": ["3", "-5"]}}', "'factor' must be a positive"),
    result("a compact result bundle of fewer factors than inputs",
           '{"v": 3, "id_prefix": "TID-", "id_start": 1, "inputs": "15,21", "factors": "3*5", "started_at": [1.0, 1.0],'
           ' "completed_at": [2.0, 2.0]}', "'factors', 'started_at' and 'completed_at': a string of as many results'"),
    result("an empty factor in a compact result bundle",
           '{"v": 3, "id_prefix": "TID-", "id_start": 1, "inputs": "15,21", "factors": "3*5,3**7", '
           '"started_at": [1.0, 1.0], "completed_at": [2.0, 2.0]}', "'factor' is not a decimal integer"),
    result("an unknown result format version", '{"v": 9, "id": "TID", "output": {"factors": ["3"]}}',
           "format version v=9"),
    result("a requestMessageId too long to name a task", '{"output": {"factors": ["3", "5"]}}',
           "requestMessageId, which must be 1..128 characters", attributes={REQUEST_MESSAGE_ID: "r" * 300}),
    Bad("an empty requestMessageId", "queue send", '{"output": {"factors": ["3"]}}', None,
        "attribute 'requestMessageId': the value must be a non-empty string", attributes={REQUEST_MESSAGE_ID: ""}),
    Bad("an empty message body", "queue send", "", None, "the body must be a non-empty string"),
    Bad("a message over the size limit", "queue send", "7" * (MAX_MESSAGE_BYTES + 1), None,
        "at most 262144 are allowed"),
]


# ---- every registry parameter, out of range and of the wrong type, each from a layer in turn

LAYERS = ("env", "SSM", "flag")
_OUT_OF_RANGE = {  # a value the type accepts that the parameter does not, where the limits do not give one
    "broker_url": ("http://example.com", "unknown scheme 'http'"),
    "result_store": ("ftp://bucket/results", "unknown scheme 'ftp'"),
    "log_level": ("LOUD", "must be one of CRITICAL, ERROR"),
    "scale_mode": ("sideways", "must be one of"),
    "stats_prefix": ("a b", "up to 100 letters"),
    "tasks_queue_name": ("my queue", "1..80 letters, digits"),
    "results_queue_name": ("q" * 81, "1..80 letters, digits"),
    "worker_asg_name": ("gr\u00fcn", "1..255 printable ASCII"),
    "supervisor_asg_name": ("x" * 256, "1..255 printable ASCII"),
    "instance_id": ("i-12", "auto, off, or an EC2 instance id"),
}
_AT_START = {  # any text is a value; what it names is found bad when the role starts
    "statsd_host": ("a..b", "cannot resolve the statsd address"),
    "log_filename": ("/proc/grid-nowhere/worker.log", "cannot create or open the log file"),
}
_WRONG_TYPE = {int: ("ten", "must be an integer"), float: ("fast", "must be a finite number"),
               str: (5, "must be a string")}


def _each_name() -> list[config.Param]:
    seen: dict[str, config.Param] = {}
    for p in config.REGISTRY:
        seen.setdefault(p.name, p)
    return list(seen.values())


def _source(p: config.Param, layer: str) -> str:
    return {"env": f"env {p.env}", "SSM": f"SSM {p.ssm_path('dev')}", "flag": f"flag {p.flag}",
            "python": f"flag {p.flag}"}[layer]


def _out_of_range(p: config.Param, layer: str) -> Bad:
    if p.name in _AT_START:
        value, words = _AT_START[p.name]
        return Bad(f"{p.name} that cannot be used", "flag", (p.name, value), 2, (f"{p.name}={value!r}", words),
                   role=p.role)
    value, words = _OUT_OF_RANGE.get(p.name) or (repr(p.type(p.max) + 1), f"must be {p.allowed()}")
    return Bad(f"{p.name} out of range", layer, (p.name, value), 2, (_named(p, value), _source(p, layer), words),
               role=p.role)


def _wrong_type(p: config.Param, layer: str) -> Bad:
    value, words = _WRONG_TYPE[p.type]
    layer = "python" if p.type is str else layer  # text is a string wherever text comes from: a value from code
    return Bad(f"{p.name} of the wrong type", layer, (p.name, value), 2, (_named(p, value), _source(p, layer), words),
               role=p.role)


def _named(p: config.Param, value: object) -> str:
    """The parameter and its value as a message shows them: as is, or quoted where it holds a space (the start of a
    long one)."""
    plain = isinstance(value, str) and value and not any(c.isspace() for c in value) and len(value) <= 200
    return f"{p.name}=" + (value if plain else repr(value)[:100])


REGISTRY_ROWS = [row for i, p in enumerate(_each_name())
                 for row in (_out_of_range(p, LAYERS[i % 3]), _wrong_type(p, LAYERS[(i + 1) % 3]))]

CONFIG_ROWS = [
    Bad("prime_min_bits above prime_max_bits", "env", {"GRID_PRIME_MIN_BITS": "30", "GRID_PRIME_MAX_BITS": "20"}, 2,
        "prime_min_bits=30 (env GRID_PRIME_MIN_BITS) must be <= prime_max_bits=20", role="producer"),
    Bad("min_workers above max_workers", "env", {"GRID_MIN_WORKERS": "5", "GRID_MAX_WORKERS": "2"}, 2,
        "min_workers=5 (env GRID_MIN_WORKERS) must be <= max_workers=2", role="supervisor"),
    Bad("a heartbeat as slow as the visibility timeout", "env",
        {"GRID_HEARTBEAT_INTERVAL": "60", "GRID_VISIBILITY_TIMEOUT": "60"}, 2,
        "heartbeat_interval=60.0 (env GRID_HEARTBEAT_INTERVAL) must be < visibility_timeout=60"),
    Bad("a number in digits that are not ASCII", "env", {"GRID_WORK_BUDGET": "\u0661\u0662"}, 2,
        "work_budget=\u0661\u0662 from env GRID_WORK_BUDGET: must be a finite number"),
    Bad("a number with a digit separator", "env", {"GRID_STATS_RATE": "0_5"}, 2,
        "stats_rate=0_5 from env GRID_STATS_RATE: must be a finite number"),
    Bad("an AWS_ENV that cannot name an SSM path", "env", {"AWS_ENV": "a/b"}, 2,
        "AWS_ENV='a/b' from env AWS_ENV: must be 1..15 letters"),
    Bad("a GRID_SSM that is neither on nor off", "env", {"GRID_SSM": "maybe"}, 2,
        "GRID_SSM='maybe' from env GRID_SSM: must be 1"),
    Bad("a misspelt environment variable", "env", {"GRID_BATCH_SIZ": "5"}, 0,
        "env GRID_BATCH_SIZ: not a grid parameter, ignored; did you mean GRID_BATCH_SIZE?"),
    Bad("an unknown SSM key close to a parameter", "SSM", ("batch_sise", "5"), 0,
        "SSM /dev/AWSGridWithSQS/worker/batch_sise: not a worker parameter, ignored; did you mean batch_size?"),
    Bad("an unknown SSM key", "SSM", ("colour", "blue"), 0,
        "SSM /dev/AWSGridWithSQS/worker/colour: not a worker parameter, ignored"),
    Bad("SSM Parameter Store unreachable", "SSM unreachable", ["config", "show"], 2,
        ("cannot read SSM parameters under /dev/AWSGridWithSQS/worker", "GRID_SSM=0")),
]

_ALLOWED_FORMS = "allowed forms: sqlite:///abs/path/grid.db"
BROKER_URLS = [Bad(what, "command", ["status", "--broker-url", url], 2, (f"broker URL {url!r}: {why}", _ALLOWED_FORMS))
               for what, url, why in [
    ("a broker URL of an unknown scheme", "amqp://localhost", "unknown scheme 'amqp'"),
    ("an empty broker URL", "", "unknown scheme ''"),
    ("an embedded queue on a host", "sqlite://host/grid.db", "host 'host'"),
    ("an embedded queue without a file", "sqlite:///tmp/", "it names no database file"),
    ("an SQS broker URL with a path", "sqs://host/queue", "sqs:// takes no host or path"),
    ("an unknown broker option", "sqs://?endpoint=http://127.0.0.1:1", "unknown option 'endpoint'"),
    ("a broker option given twice", "sqs://?region=us-east-1&region=eu-west-1",
     "option region=['us-east-1', 'eu-west-1']: give it once"),
    ("a broker option of an unknown value", "sqlite:///tmp/g.db?synchronous=sometimes",
     "option synchronous=['sometimes']: give it once, one of ('normal', 'full')"),
    ("a malformed broker query", "sqlite:///tmp/g.db?synchronous", "malformed query"),
    ("a broker URL with a fragment", "sqlite:///tmp/g.db#top", "a fragment"),
    ("a broker URL with an unclosed '['", "sqs://[", "malformed URL"),
]]

MISSING_QUEUES = [
    Bad("a worker's missing tasks queue", "SQS", ["worker", "--max-seconds", "5"], 2,
        ("grid worker: error: look up on SQS queue 'grid_tasks_queue'", "the queue does not exist")),
    Bad("a collector's missing results queue", "SQS", ["collector", "--max-seconds", "5"], 2,
        ("grid collector: error: look up on SQS queue 'grid_results_queue'", "the queue does not exist")),
    Bad("submitting to a missing queue", "SQS", ["submit", "15"], 2,
        ("grid submit: error: look up on SQS queue 'grid_tasks_queue'", "the queue does not exist")),
    Bad("the dead-letter queue of a missing queue", "SQS", ["dlq", "peek"], 2, "the queue does not exist"),
    Bad("the status of missing queues", "SQS", ["status"], 0, "queue grid_tasks_queue: missing"),
    Bad("a missing embedded queue", "command", ["dlq", "redrive"], 2,
        "queue 'grid_tasks_queue' does not exist in"),
]


def command(what: str, argv: list[str], words: str | tuple[str, ...], entry: str = "command", **kw) -> Bad:
    return Bad(what, entry, argv, 2, words, **kw)


COMMAND_LINES = [
    command("an unknown command", ["frobnicate"], "invalid choice: 'frobnicate'", "script"),
    command("an unknown flag", ["status", "--bogus"], "unrecognized arguments: --bogus"),
    command("a count that is not a number", ["status", "--last", "x"], "--last: 'x' is not a number"),
    command("a negative count", ["status", "--last", "-3"], "--last: '-3' must be a finite number > 0"),
    command("a negative number of messages to redrive", ["dlq", "redrive", "--max", "-3"],
            "--max: '-3' must be a finite number > 0", "script"),
    command("a run time that is not a number", ["worker", "--max-seconds", "nan"],
            "--max-seconds: 'nan' must be a finite number > 0", "script"),
    command("a negative run time", ["collector", "--max-seconds", "-1"], "'-1' must be a finite number > 0"),
    command("a choice that is not offered", ["results", "--format", "xml"], "invalid choice: 'xml'"),
    command("an action that is not offered", ["dlq", "frob"], "invalid choice: 'frob'"),
    command("an unknown role", ["config", "show", "--role", "wizard"], "invalid choice: 'wizard'"),
    command("an unknown fleet", ["supervisor", "--fleet", "bogus"], "invalid choice: 'bogus'"),
    command("a word to factorize", ["submit", "12a"], "number '12a' (argument 1): must be a decimal integer >= 1",
            "script"),
    command("zero to factorize", ["submit", "15", "0"], "number '0' (argument 2): must be a decimal integer >= 1"),
    command("a number too large to submit", ["submit", "9" * 1001],
            "number of 1001 digits (argument 1): too large, the wire carries up to 1000"),
    command("a bad number in a file", ["submit", "--file", "-"], "number '0x10' (stdin 2): must be", stdin="15 0x10"),
    command("nothing to submit", ["submit"], "no numbers to submit", stdin=""),
    command("a numbers file that is not there", ["submit", "--file", "/nonexistent/numbers.txt"],
            "--file '/nonexistent/numbers.txt': cannot read it"),
    command("an empty job name", ["submit", "--job", "", "15"], "'job' must be a string of 1..128 characters"),
    command("a job name too long for its task ids", ["submit", "--job", "j" * 128, "15"],
            "'id' must be a string of 1..128 characters"),
    command("an output file that cannot be written", ["config", "export", "--output", "/nonexistent/registry.json"],
            "--output '/nonexistent/registry.json': cannot write it"),
    command("a count of tasks below 1", ["producer", "--count", "0"], "--count: '0' must be a finite number > 0"),
    command("prime sizes the wrong way round", ["local", "--bits", "30:20"], "--bits 30:20: MIN must be <= MAX"),
    command("prime sizes that are not numbers", ["local", "--bits", "9:x"], "--bits '9:x': must be MIN:MAX"),
    command("a workload file that is not there", ["local", "--workload", "/nonexistent/w.txt"],
            "--workload '/nonexistent/w.txt': cannot read it"),
    command("a bad parameter to the installed script", ["worker", "--batch-size", "12"],
            "grid worker: error: batch_size=12 from flag --batch-size: must be 1..10", "script"),
]

API_CALLS = [
    Bad("a number below 1 from Python", "API", [15, 0], 400, "number 0 (numbers[1]): must be an integer >= 1"),
    Bad("a number too large from Python", "API", ["9" * 1001], 413, "number of 1001 digits (numbers[0]): too large"),
    Bad("a float from Python", "API", [1.5], 400, "got float"),
    Bad("a boolean from Python", "API", [True], 400, "got bool"),
    Bad("no numbers from Python", "API", [], None, "no numbers given"),
]

TABLE = (TASK_BODIES + RESULT_BODIES + REGISTRY_ROWS + CONFIG_ROWS + BROKER_URLS + MISSING_QUEUES + COMMAND_LINES
         + API_CALLS)


def test_the_table_holds_forty_kinds_or_more_each_once_and_every_parameter():
    names = [f"{bad.entry}: {bad.what}" for bad in TABLE]
    assert len(names) == len(set(names)) and len(names) >= 40
    assert {bad.input[0] for bad in REGISTRY_ROWS} == {p.name for p in config.REGISTRY}


@pytest.mark.parametrize("bad", TABLE, ids=lambda bad: f"{bad.entry}: {bad.what}")
def test_bad_input_gets_its_documented_answer(bad, request):
    ENTRIES[bad.entry](bad, request)


# ---- task and result messages


def _body(bad: Bad, tid: str) -> str:
    return bad.input.replace("TID", tid)


def _target(bad: Bad, tid: str, message_id: str) -> str:
    return bad.task.replace("TID", tid).replace("{message}", message_id)


def _decoded_answer(bad: Bad, body) -> tuple[int | None, str]:
    """(code, message) of the decoder's answer for the row's task: a MessageError, or the item it rejected."""
    try:
        tasks = decode_tasks(body, default_id="m", sent_at=1.0)
    except MessageError as e:
        return e.code, str(e)
    item = {item.id: item for item in tasks}[_target(bad, "t", "m")]
    return (item.code, item.message) if isinstance(item, Rejected) else (None, "")


def decoded(bad: Bad, request) -> None:
    code, message = _decoded_answer(bad, bad.input if isinstance(bad.input, bytes) else _body(bad, "t"))
    assert code == (None if bad.code == Code.OVER_BUDGET else bad.code)  # the budget is the worker's, not the wire's
    assert bad.code in (None, Code.OVER_BUDGET) or bad.holds(message), message


def worked(bad: Bad, request) -> None:
    """Decoded, then answered by a worker's step on the embedded queue: the row's error result, and the task sent
    after it answered too (the worker went on)."""
    decoded(bad, request)
    answers, rows = request.getfixturevalue("worker_answers")
    tid, message_id = rows[bad.what]
    (answer,) = answers.pop(_target(bad, tid, message_id))
    assert answer.error_code == bad.code and bad.holds(answer.error_message or ""), answer
    (after,) = answers[f"{tid}-after"]
    assert after.factors == (3, 5)


@pytest.fixture(scope="module")
def worker_answers(tmp_path_factory):
    """Every task message row sent to one worker, each followed by a good task, and answered: the results by task id,
    and each row's (task id, message id)."""
    cfg = config.load("worker", environ={}, flags={
        "tasks_queue_name": "bad-tasks", "results_queue_name": "bad-results", "statsd_host": "", "log_filename": "-",
        "queue_polling_wait_time": 0, "concurrency": 1, "pipeline_depth": 1, "work_budget": WORK_BUDGET})
    with open_broker(f"sqlite://{tmp_path_factory.mktemp('worker')}/grid.db") as broker:
        for name in (cfg.tasks_queue_name, cfg.results_queue_name):
            broker.queue(name, create=True)
        worker = Worker(cfg, broker, Metrics("worker"))
        worker.setup()
        rows = {}
        for i, bad in enumerate(b for b in TABLE if b.entry == "task message"):
            tid = f"r{i}"
            outcome = worker.tasks.send_batch([SendEntry("0", _body(bad, tid), bad.attributes),
                                               SendEntry("1", '{"input": "15", "id": "%s-after"}' % tid)])
            assert outcome.ok, outcome
            rows[bad.what] = tid, outcome.message_ids["0"]
        while worker.run_once():
            pass
        worker.teardown()
        answers: dict = {}
        while messages := worker.results.receive(10):
            for message in messages:
                for r in decode_results(message.body, default_id=message.attributes[REQUEST_MESSAGE_ID]):
                    answers.setdefault(r.task_id, []).append(r)
            worker.results.delete_batch([m.receipt for m in messages])
        assert worker.tasks.counts().total == 0 and worker.tasks.dead_letter.counts().total == 0
        yield answers, rows


def collected(bad: Bad, request) -> None:
    """Refused by the decoder; left by a collector's step for the dead-letter queue with an error line naming the
    message, and the good result sent after it stored (the collector went on)."""
    with pytest.raises(MessageError) as refused:
        decode_results(_body(bad, "t"), default_id=bad.attributes.get(REQUEST_MESSAGE_ID, "m"))
    assert refused.value.code == bad.code and bad.holds(str(refused.value))
    stored, errors, rows = request.getfixturevalue("collector_outcome")
    tid, message_id = rows[bad.what]
    assert tid not in stored and f"{tid}-after" in stored
    (line,) = [line for line in errors if message_id in line]
    assert "left for the dead-letter queue" in line and bad.holds(line), line


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def collector_outcome(tmp_path_factory):
    """Every result message row sent to one collector, each followed by a good result, and collected: the ids
    stored, the collector's error lines, and each row's (task id, message id)."""
    where = tmp_path_factory.mktemp("collector")
    cfg = config.load("collector", environ={}, flags={
        "broker_url": f"sqlite://{where}/grid.db", "result_store": str(where / "results.db"), "statsd_host": "",
        "log_filename": "-", "queue_polling_wait_time": 0, "visibility_timeout": 600})
    errors = _Lines()
    logging.getLogger("grid.collector").addHandler(errors)
    try:
        with open_broker(cfg.broker_url) as broker:
            results = broker.queue(cfg.results_queue_name, create=True)
            rows = {}
            for i, bad in enumerate(b for b in TABLE if b.entry == "result message"):
                tid = f"r{i}"
                good = '{"id": "%s-after", "input": "15", "output": {"factors": ["3", "5"]}}' % tid
                outcome = results.send_batch([SendEntry("0", _body(bad, tid), bad.attributes), SendEntry("1", good)])
                assert outcome.ok, outcome
                rows[bad.what] = tid, outcome.message_ids["0"]
            collector = Collector(cfg, broker, Metrics("collector"))
            collector.setup()
            while collector.run_once():
                pass
            collector.teardown()
            assert results.counts().total == len(rows)  # the bad ones, not deleted: they reach the DLQ in time
        with open_store(cfg.result_store) as store:
            yield {r.task_id for r in store.results()}, errors.lines, rows
    finally:
        logging.getLogger("grid.collector").removeHandler(errors)


def refused_at_send(bad: Bad, request) -> None:
    """The queue refuses the entry, naming why (as SQS does); nothing is sent."""
    with open_broker(f"sqlite://{request.getfixturevalue('tmp_path')}/grid.db") as broker:
        queue = broker.queue("q", create=True)
        outcome = queue.send_batch([SendEntry("0", bad.input, bad.attributes)])
        assert list(outcome.failed) == ["0"] and bad.holds(outcome.failed["0"]), outcome
        assert queue.counts().total == 0


# ---- commands


@pytest.fixture
def grid_env(tmp_path, monkeypatch, aws_env, root_logger):
    """The environment of a `grid` command: an embedded queue and store in tmp_path, no metrics, no SSM, only errors
    logged (to stderr); no GRID_ or AWS_ENV variable of the caller's."""
    for name in [n for n in os.environ if n.startswith(config.ENV_PREFIX) or n == config.AWS_ENV_VAR]:
        monkeypatch.delenv(name)
    for name, value in {"GRID_BROKER_URL": f"sqlite://{tmp_path}/grid.db", "GRID_RESULT_STORE": str(tmp_path / "r.db"),
                        "GRID_STATSD_HOST": "", "GRID_LOG_FILENAME": "-", "GRID_LOG_LEVEL": "ERROR",
                        "GRID_SSM": "0"}.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def _run(argv: list[str], capsys, monkeypatch, stdin: str | None = None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's answer
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def _answered(bad: Bad, code: int, out: str, err: str) -> None:
    """Exit 2 and one line on stderr that says it (argparse's usage may come first); or, for a warning, exit 0 and
    the warning. Never a traceback."""
    assert "Traceback" not in out + err
    assert code == bad.code, (code, out, err)
    if code == 0:
        assert bad.holds(out + err), out + err
        return
    lines = err.splitlines()
    if lines and lines[0].startswith("usage:"):
        lines = [line for line in lines if ": error: " in line]
    assert len(lines) == 1 and lines[0].startswith("grid") and bad.holds(lines[0]), err


def in_process(bad: Bad, request) -> None:
    monkeypatch = request.getfixturevalue("grid_env")
    _answered(bad, *_run(bad.input, request.getfixturevalue("capsys"), monkeypatch, bad.stdin))


def as_script(bad: Bad, request) -> None:
    """The installed `grid` script in a process of its own."""
    request.getfixturevalue("grid_env")
    script = Path(sys.executable).with_name("grid")
    done = subprocess.run([str(script), *bad.input], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=SCRIPT_TIMEOUT, check=False)
    _answered(bad, done.returncode, done.stdout, done.stderr)


def from_env(bad: Bad, request) -> None:
    """`grid config show` of the row's role, with the variables set."""
    monkeypatch = request.getfixturevalue("grid_env")
    variables = bad.input if isinstance(bad.input, dict) else {config.ENV_PREFIX + bad.input[0].upper(): bad.input[1]}
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    _answered(bad, *_run(["config", "show", "--role", bad.role], request.getfixturevalue("capsys"), monkeypatch))


def from_ssm(bad: Bad, request) -> None:
    """`grid config show` of the row's role, the value in SSM Parameter Store (moto in process)."""
    monkeypatch = request.getfixturevalue("grid_env")
    name, value = bad.input
    monkeypatch.delenv(config.ENV_PREFIX + name.upper(), raising=False)
    monkeypatch.setenv("GRID_SSM", "1")
    with mock_aws():
        boto3.client("ssm").put_parameter(Name=f"{config.ssm_root('dev', bad.role)}/{name}", Value=value,
                                          Type="String")
        answer = _run(["config", "show", "--role", bad.role], request.getfixturevalue("capsys"), monkeypatch)
    _answered(bad, *answer)


def ssm_unreachable(bad: Bad, request) -> None:
    """SSM read where nothing listens: a port this test holds bound, without listening, refuses connections."""
    monkeypatch = request.getfixturevalue("grid_env")
    monkeypatch.setenv("GRID_SSM", "1")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", f"http://127.0.0.1:{closed.getsockname()[1]}")
        answer = _run(bad.input, request.getfixturevalue("capsys"), monkeypatch)
    _answered(bad, *answer)


def from_flag(bad: Bad, request) -> None:
    """The row's role started with the flag: `grid <role> --<name> <value>`."""
    monkeypatch = request.getfixturevalue("grid_env")
    name, value = bad.input
    argv = [bad.role, "--" + name.replace("_", "-"), value, "--max-seconds", "1"]
    _answered(bad, *_run(argv, request.getfixturevalue("capsys"), monkeypatch))


def from_code(bad: Bad, request) -> None:
    """config.load with a value from code (what grid local and the Python API pass)."""
    name, value = bad.input
    with pytest.raises(ConfigError) as caught:
        config.load(bad.role, flags={name: value}, environ={})
    assert caught.value.exit_code == 2 and len(str(caught.value).splitlines()) == 1 and bad.holds(str(caught.value))


def on_sqs(bad: Bad, request) -> None:
    """`grid` on SQS (moto in process) where no queue was made."""
    monkeypatch = request.getfixturevalue("grid_env")
    monkeypatch.setenv("GRID_BROKER_URL", "sqs://?region=us-east-1")
    with mock_aws():
        answer = _run(bad.input, request.getfixturevalue("capsys"), monkeypatch)
    _answered(bad, *answer)


def from_python(bad: Bad, request) -> None:
    """Client.submit: refused before anything is sent, InvalidTask with the wire's code (a ConfigError: exit 2)."""
    request.getfixturevalue("grid_env")
    with Client() as client, pytest.raises(ConfigError) as caught:
        client.submit(bad.input)
    assert caught.value.exit_code == 2 and getattr(caught.value, "code", None) == bad.code
    assert bad.holds(str(caught.value)), caught.value
    with open_broker(os.environ["GRID_BROKER_URL"]) as broker:
        assert broker.queue("grid_tasks_queue", create=True).counts().total == 0


ENTRIES = {
    "task message": worked, "task bytes": decoded, "result message": collected, "queue send": refused_at_send,
    "env": from_env, "SSM": from_ssm, "SSM unreachable": ssm_unreachable, "flag": from_flag, "python": from_code,
    "command": in_process, "script": as_script, "SQS": on_sqs, "API": from_python,
}
