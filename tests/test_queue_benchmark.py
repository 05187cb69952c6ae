"""The queue benchmark still runs, and its request counts (deterministic on moto) stay within the goal."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

PATH = Path(__file__).parent.parent / "benchmarks" / "queues.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_queues", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bundled_tasks_need_at_most_004_sqs_requests_each(bench, aws_env):
    assert bench.sqs_requests_per_task(bench.tiny_numbers(300), bench.BUNDLE) <= 0.04


def test_one_task_per_message_costs_six_requests_per_ten_tasks(bench, aws_env):
    # producer send, worker receive, result send, delete; collector receive, delete; plus one empty poll each
    requests = bench.sqs_requests_per_task(bench.tiny_numbers(100), 1)
    assert 0.6 <= requests <= 0.6 + 2 / 100


def test_every_task_comes_back_through_the_embedded_queue(bench, sqlite_url):
    assert bench.end_to_end(sqlite_url, bench.tiny_numbers(300), 1) > 0
    assert bench.end_to_end(sqlite_url, bench.tiny_numbers(300), 7) > 0


def test_the_codec_benchmark_answers_every_task_and_prints_its_three_costs(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(PATH.parent / "codec.py")], cwd=PATH.parent.parent, capture_output=True,
                         text=True, check=True, env={"PATH": "/usr/bin:/bin"}).stdout
    assert all(part in out for part in ("pack ", "answer ", "decode_results ", "us a task"))
