"""The one way the grid opens a SQLite file that several processes share: the embedded queue and the result store.

WAL mode, so readers never wait for the writer; a busy timeout for the statements that follow; and a retry of the
open itself, because while another process switches a new file to WAL, SQLite refuses the switch at once ("database
is locked") instead of waiting its busy timeout.
"""
from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable

MEMORY = ":memory:"
PRIVATE = 0o600  # a new file's mode: the queue's messages and the results are their owner's data
OPEN_RETRY = 0.002  # seconds between tries while another process holds the new file's lock


def connect(path: str, *, timeout: float, synchronous: str = "NORMAL",
            prepare: Callable[[sqlite3.Connection], None] | None = None,
            check_same_thread: bool = True) -> sqlite3.Connection:
    """A connection to `path` in WAL mode, made with its folder if new, in autocommit mode (isolation_level None),
    whose statements wait up to `timeout` seconds for a lock. `prepare(connection)` runs before it is returned (a
    schema, a check of it); a connection that fails there is closed.

    A new file is made readable by its owner only (PRIVATE). Raises OSError (the folder or file cannot be made), sqlite3.Error (after `timeout` seconds of refusals, or at once for
    any other failure, a file that cannot use WAL among them), or what `prepare` raises.
    """
    if path != MEMORY:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        _create_private(path)
    give_up = time.monotonic() + timeout
    while True:
        try:
            return _open(path, timeout, synchronous, prepare, check_same_thread)
        except sqlite3.OperationalError as e:
            if e.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > give_up:
                raise
        time.sleep(OPEN_RETRY)


def _create_private(path: str) -> None:
    """Make the file, if it is new, readable by its owner only; SQLite gives its -wal and -shm files the same mode."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE))
    except FileExistsError:
        pass


def _open(path: str, timeout: float, synchronous: str, prepare: Callable[[sqlite3.Connection], None] | None,
          check_same_thread: bool) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=check_same_thread)
    try:
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal" and path != MEMORY:
            raise sqlite3.NotSupportedError(f"the file cannot use WAL mode (its journal mode stays {mode!r})")
        db.execute(f"PRAGMA synchronous = {synchronous}")
        if prepare is not None:
            prepare(db)
    except BaseException:
        db.close()
        raise
    return db
