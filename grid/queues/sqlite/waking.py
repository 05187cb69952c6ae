"""Waking receivers: a receiver that waits binds a Linux abstract UNIX datagram socket, and the broker records its
address in the database (`waiters`); a sender pokes the waiters of its queue after its commit. A receiver also wakes
when the next in-flight or delayed message becomes visible, and polls every POLL_FALLBACK seconds in case a poke was
lost (or where abstract sockets do not exist); every NEW_WAITER_POLL seconds while it is new, since a sender trusts
the list of waiters it read for WAITERS_TTL."""
from __future__ import annotations

import select
import socket
import time
import uuid
from collections.abc import Callable

POLL_FALLBACK = 0.25  # seconds between polls of a waiting receiver when no poke arrives
WAITERS_TTL = 0.5  # seconds a sender trusts its list of waiters; a newer waiter polls meanwhile
NEW_WAITER_POLL = 0.005  # seconds between polls of a waiter for WAITERS_TTL after it registered: a sender may poke
# from a list read before it (a thread's first wait, e.g. the collector's at the end of a run, waited POLL_FALLBACK)
WAITER_PREFIX = b"\0grid-queue-"


class Wakeups:
    """One thread's side of the waking: a socket per queue it waits on, and the one it pokes others with. The
    database's side is the caller's: `register`, `waiting` and `forget` read and write the waiters' addresses."""

    def __init__(self):
        self._sockets: dict[str, socket.socket] = {}
        self._addresses: dict[str, bytes] = {}
        self._known: dict[str, tuple[list[bytes], float]] = {}  # queue -> its waiters' addresses, when looked up
        self._registered: dict[str, float] = {}  # queue -> when this thread's waiter registered
        self._poker = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._poker.setblocking(False)

    def waiter(self, queue: str, register: Callable[[bytes, str], None]) -> socket.socket | None:
        """This thread's wake-up socket for `queue`, registered with `register(address, queue)`; None where
        unsupported."""
        if queue not in self._sockets:
            address = WAITER_PREFIX + uuid.uuid4().hex.encode()
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                sock.bind(address)
            except OSError:
                sock.close()
                return None
            sock.setblocking(False)
            register(address, queue)
            self._sockets[queue], self._addresses[queue] = sock, address
            self._registered[queue] = time.monotonic()
        return self._sockets[queue]

    def poll_period(self, queue: str) -> float:
        """Seconds between the polls of this thread's waiter on `queue`: NEW_WAITER_POLL until every sender's list of
        waiters may hold it, then POLL_FALLBACK."""
        new = time.monotonic() - self._registered.get(queue, -WAITERS_TTL) < WAITERS_TTL
        return NEW_WAITER_POLL if new else POLL_FALLBACK

    def poke(self, queue: str, waiting: Callable[[str], list[bytes]], forget: Callable[[list[bytes]], None]) -> None:
        """Wake the receivers waiting on `queue` (their addresses from `waiting(queue)`, trusted for WAITERS_TTL);
        `forget` those whose process is gone."""
        addresses, looked_up = self._known.get(queue, ((), -WAITERS_TTL))
        if time.monotonic() - looked_up >= WAITERS_TTL:
            addresses = waiting(queue)
            self._known[queue] = (addresses, time.monotonic())
        gone = []
        for address in addresses:
            try:
                self._poker.sendto(b"!", address)
            except BlockingIOError:
                pass  # its buffer is full of pokes already
            except OSError:
                gone.append(address)
        if gone:
            self._known.pop(queue)
            forget(gone)

    def close(self) -> list[bytes]:
        """Close the sockets; the addresses to take out of the database."""
        for sock in self._sockets.values():
            sock.close()
        addresses = list(self._addresses.values())
        self._sockets.clear()
        self._addresses.clear()
        self._poker.close()
        return addresses


def drain(sock: socket.socket | None) -> None:
    """Read the pokes a wake-up socket holds."""
    while sock is not None:
        try:
            sock.recv(64)
        except BlockingIOError:
            return


def wait(sock: socket.socket | None, seconds: float) -> None:
    """Until a poke arrives on `sock` (none: just sleep), at most `seconds`."""
    select.select([sock] if sock else [], [], [], seconds)
