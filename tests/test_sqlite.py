"""grid.sqlite, the one opener of a shared SQLite file (the embedded queue's and the result store's)."""
from __future__ import annotations

import sqlite3

import pytest

from grid import sqlite
from helpers import holding_the_write_lock


def test_a_new_file_and_its_folder_are_made_in_wal_mode_with_the_busy_timeout(tmp_path):
    db = sqlite.connect(str(tmp_path / "a" / "b.db"), timeout=3.5, synchronous="FULL")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("PRAGMA busy_timeout").fetchone() == (3500,)
        assert db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
        assert db.isolation_level is None
    finally:
        db.close()


def test_the_switch_to_wal_refused_while_another_connection_writes_is_tried_again_until_it_is_let(tmp_path):
    path = str(tmp_path / "grid.db")
    with holding_the_write_lock(path) as lock:
        lock.release_after(0.2)
        db = sqlite.connect(path, timeout=30)
        assert lock.released and db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        db.close()


def test_a_refusal_that_outlasts_the_timeout_is_raised(tmp_path):
    path = str(tmp_path / "grid.db")
    with holding_the_write_lock(path), pytest.raises(sqlite3.OperationalError, match="locked"):
        sqlite.connect(path, timeout=0.05)


def test_prepare_runs_on_the_connection_and_a_failure_there_closes_it(tmp_path):
    opened = []

    def prepare(db):
        opened.append(db)
        db.execute("CREATE TABLE t (x)")
        raise ValueError("bad schema")

    with pytest.raises(ValueError, match="bad schema"):
        sqlite.connect(str(tmp_path / "grid.db"), timeout=1, prepare=prepare)
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        opened[0].execute("SELECT 1")


def test_a_path_that_is_a_folder_is_an_error_of_sqlite(tmp_path):
    with pytest.raises(sqlite3.Error):
        sqlite.connect(str(tmp_path), timeout=0.1)
