"""The SQS latency benchmark (`make bench-sqs`) still runs in its quick mode: both tables, one row per delay, and the
queue requests it counted in the measured processes (behaviour, not speed)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "sqs.py"
DELAYS = ("0", "20", "tail")
LOCAL_COLUMNS = ["delay", "tasks/s", "ceiling tasks/s", "of the first row", "ratio", "runs", "once results flow",
                 "kernel busy", "requests/task", "all", "billed/task", "goal"]
AWS_COLUMNS = [c for c in LOCAL_COLUMNS if c not in ("ceiling tasks/s", "of the first row", "once results flow")]


def tables(output: str) -> list[list[dict[str, str]]]:
    """The markdown tables of the output, each a list of rows keyed by column."""
    found, lines = [], output.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("| delay |"):
            head = [cell.strip() for cell in line.strip("|").split("|")]
            rows = []
            for body in lines[i + 2:]:
                if not body.startswith("|"):
                    break
                rows.append(dict(zip(head, (cell.strip() for cell in body.strip("|").split("|")), strict=True)))
            found.append(rows)
    return found


@pytest.fixture(scope="module")
def quick():
    run = subprocess.run([sys.executable, "-P", str(SCRIPT), "--quick", "--delays", ",".join(DELAYS)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def test_both_harnesses_print_a_row_per_delay_with_every_column(quick):
    local, aws = tables(quick)
    assert [list(r) for r in local] == [LOCAL_COLUMNS] * len(DELAYS)
    assert [list(r) for r in aws] == [AWS_COLUMNS] * len(DELAYS)
    assert [r["delay"] for r in aws] == ["0 ms", "20 ms", "tail (median 15, p99 80 ms)"]
    assert aws[0]["ratio"] == "1.00"  # against itself at 0 ms


def test_the_patch_counted_queue_requests_in_the_measured_processes(quick):
    for rows in tables(quick):
        for r in rows:
            assert float(r["requests/task"]) > 0
            assert float(r["all"]) >= float(r["requests/task"])
            assert float(r["billed/task"]) >= float(r["requests/task"])
            assert float(r["tasks/s"].replace(",", "")) > 0
    assert "SendMessageBatch" in quick and "ReceiveMessage" in quick and "DeleteMessageBatch" in quick


def test_the_goals_are_printed_beside_the_figures(quick):
    local, aws = tables(quick)
    assert local[1]["goal"].startswith("ratio >= 0.9: ")
    assert aws[1]["goal"].startswith("ratio >= 0.95: ")
    assert all(r["goal"].count("PASS") + r["goal"].count("FAIL") >= 1 for r in local[1:] + aws[1:])


def test_a_bad_delay_is_refused_naming_it():
    run = subprocess.run([sys.executable, "-P", str(SCRIPT), "--delays", "0,fast"], capture_output=True, text=True)
    assert run.returncode == 2
    assert "--delays: 'fast' is not allowed" in run.stderr
