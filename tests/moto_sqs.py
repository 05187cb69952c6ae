"""moto's SQS receives as SQS makes them, for the moto servers of the tests (conftest.py) and of `make bench-sqs`
(benchmarks/sqs.py, which loads this file by its path).

moto's receive_message takes no lock, so two concurrent receives can take one message twice (seen: two processes got
the same messages); SQS does not within a visibility window. Here each queue's receives take their messages one at a
time, and a long poll waits for messages outside that lock, as on SQS: one lock held through long polls let a
collector's wait on the results queue hold every worker's receive of the tasks queue back for its whole wait.
"""
from __future__ import annotations

import threading
import time


def like_sqs(receive_message):
    """moto's `SQSBackend.receive_message` made as SQS's (module docstring)."""
    locks: dict[str, threading.Lock] = {}

    def receive(self, queue_name, count, wait_seconds_timeout, visibility_timeout, *args, **kwargs):
        end = time.monotonic() + wait_seconds_timeout
        while True:
            with locks.setdefault(queue_name, threading.Lock()):
                got = receive_message(self, queue_name, count, 0, visibility_timeout, *args, **kwargs)
            left = end - time.monotonic()
            if got or left <= 0:
                return got
            self.get_queue(queue_name).wait_for_messages(left)

    return receive
