"""The daemons' statsd metrics, received by `grid local` itself: counter totals and latency timings."""
from __future__ import annotations

import socket
import threading
import time


class StatsListener:
    """A statsd server on a loopback port: counter totals (and when each last changed) and the latency timings since
    the last `take`."""

    def __init__(self, latency_name: str):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.latency_name = latency_name
        self.counters: dict[str, float] = {}
        self.changed: dict[str, float] = {}  # counter name -> time.monotonic() of the datagram that last added to it
        self._latencies: list[float] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="grid-local-statsd", daemon=True)
        self._thread.start()

    def count(self, name: str) -> int:
        with self._lock:
            return round(self.counters.get(name, 0))

    def counted(self, name: str) -> tuple[int, float | None]:
        """A counter's total and when it last changed (time.monotonic(); None: never)."""
        with self._lock:
            return round(self.counters.get(name, 0)), self.changed.get(name)

    def take_latencies(self) -> list[float]:
        """Latencies (seconds) received since the last call."""
        with self._lock:
            taken, self._latencies = self._latencies, []
        return taken

    def close(self) -> None:
        """Stop serving, after reading what the roles sent before they exited."""
        self._stop.set()
        self._thread.join()
        self.sock.setblocking(False)
        while self._receive_one():
            pass
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._receive_one()

    def _receive_one(self) -> bool:
        """Record one datagram; False when none came (within the socket's timeout)."""
        try:
            data = self.sock.recv(65536)
        except (TimeoutError, BlockingIOError):
            return False
        arrived = time.monotonic()
        with self._lock:
            for line in data.decode(errors="replace").splitlines():
                self._record(line, arrived)
        return True

    def _record(self, line: str, arrived: float) -> None:
        name, _, rest = line.partition(":")
        if name != self.latency_name and "|c" not in rest:  # only counters and the latency are shown
            return
        value, _, rest = rest.partition("|")
        kind, _, rate = rest.partition("|")
        try:
            amount = float(value) / (float(rate[1:]) if rate.startswith("@") else 1.0)
        except ValueError:
            return
        if kind == "c":
            self.counters[name] = self.counters.get(name, 0) + amount
            self.changed[name] = arrived
        elif kind == "ms" and name == self.latency_name:
            self._latencies.append(float(value) / 1000)
