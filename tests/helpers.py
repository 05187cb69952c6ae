"""Helpers more than one test module uses (fixtures are in conftest.py)."""
from __future__ import annotations

import time


def eventually(condition, what: str, patience: float = 60.0) -> None:
    """Wait until `condition()` holds; fail naming `what` after `patience` seconds."""
    deadline = time.monotonic() + patience
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {patience} s"
        time.sleep(0.01)


def alive(pid: int) -> bool:
    """The process runs (it exists and is not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def record_statsd_before_waiting(queue, sock) -> list[str]:
    """Make `queue`'s receives that may wait first read what reached the statsd socket `sock`; the list they fill."""
    real, sent = queue.receive, []

    def receive(*args, wait_seconds=0, **kwargs):
        if wait_seconds:
            sent.append(sock.recv(65536).decode())
        return real(*args, **kwargs)

    queue.receive = receive
    return sent
