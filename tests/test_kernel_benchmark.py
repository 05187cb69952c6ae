"""The kernel benchmark (`make bench-kernel`): its peers all answer a row right, it prints both tables, and it reads
perf stat's clock rate or says why it has none (behaviour, not speed)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "kernel.py"


def bench():
    spec = importlib.util.spec_from_file_location("kernel_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_quick_row_runs_every_factoring_peer_and_prints_both_tables():
    run = subprocess.run([sys.executable, "-P", str(SCRIPT), "--quick", "--only", "A16"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert " ! " not in run.stderr, run.stderr  # a peer's wrong answer
    lines = run.stdout.splitlines()
    assert "| grid/flint | grid/cypari2 |" in lines[0]
    row = next(line for line in lines if line.startswith("| A16 | factor"))
    rates = [cell.strip() for cell in row.strip("|").split("|")][2:2 + len(bench().LIBS)]
    assert rates.count("-") == 1  # gmpy2 has no factoring; every other peer has a number
    assert any(line.startswith("Time per operation") for line in lines)
    assert any(line.startswith("| A16 | ") and "factor" not in line for line in lines)


def test_the_run_rows_time_factor_run_alone_and_check_every_number():
    run = subprocess.run([sys.executable, "-P", str(SCRIPT), "--quick", "--only", "B run,A run"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert " ! " not in run.stderr, run.stderr
    for wid in ("A run", "B run"):
        row = next(line for line in run.stdout.splitlines() if line.startswith(f"| {wid} | "))
        rates = [cell.strip() for cell in row.strip("|").split("|")][2:2 + len(bench().LIBS)]
        assert rates[0] != "-" and set(rates[1:]) == {"-"}  # grid only: the peers have no such call


def test_perf_stat_gives_a_clock_rate_or_the_reason_it_has_none():
    module = bench()
    counted = "2600000000,,cycles,1000000000,100.00,,\n1000.0,msec,task-clock,1000000000,100.00,1.0,CPUs utilized\n"
    assert module.parse_perf(counted) == (2.6, None)
    rate, why = module.parse_perf("<not supported>,,cycles,0,100.00,,\n0.77,msec,task-clock,774103,100.00,,\n")
    assert rate is None and "<not supported>" in why


def test_the_time_table_has_cycles_only_with_a_clock_rate():
    module = bench()
    rows = [("A", "factor", {"grid": 1e6, "flint": 5e5})]
    assert "| A | 1,000 (2,600) | 2,000 (5,200) | - |" in module.time_table(rows, 2.6, None)
    without = module.time_table(rows, None, "no perf")
    assert "| A | 1,000 | 2,000 | - |" in without and "no cycles: no perf" in without
