"""grid.sqlite, the one opener of a shared SQLite file (the embedded queue's and the result store's)."""
from __future__ import annotations

import os
import sqlite3
import stat

import pytest

from grid import sqlite
from grid.queues import open_broker
from grid.store import open_store
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


def test_a_new_file_and_its_wal_and_shm_files_are_readable_by_their_owner_only(tmp_path):
    old = os.umask(0o022)
    try:
        db = sqlite.connect(str(tmp_path / "new.db"), timeout=1)
        db.execute("CREATE TABLE t (x)")
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
        db.close()
    finally:
        os.umask(old)
    assert modes == {"new.db": 0o600, "new.db-wal": 0o600, "new.db-shm": 0o600}


def test_an_existing_file_keeps_the_mode_its_owner_gave_it(tmp_path):
    path = tmp_path / "shared.db"
    path.touch(mode=0o640)
    path.chmod(0o640)
    sqlite.connect(str(path), timeout=1).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_the_queue_and_the_store_made_by_the_grid_are_private(tmp_path):
    with open_broker(f"sqlite://{tmp_path}/q/grid.db") as broker:
        broker.queue("tasks", create=True)
    with open_store(str(tmp_path / "s" / "results.db")):
        pass
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.glob("*/*.db")} == {
        "grid.db": 0o600, "results.db": 0o600}
