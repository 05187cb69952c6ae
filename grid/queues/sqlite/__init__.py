"""The embedded queue: SQS semantics on one SQLite file that many processes share.

`broker` holds the connections, the retries and `atomic()`; `queue` the queue's statements; `waking` the sockets
that wake a waiting receiver when a message arrives.

Speed: a call's cost is mostly SQLite's per-transaction floor (WAL locks, re-reading pages another process changed,
two writes per changed page), so fewer commits per task, or more tasks per message, is what moves throughput most.
A statement on a locked database is retried after 0.1 ms, doubling, rather than after SQLite's 1 ms busy sleep; the
WAL is checkpointed once a second per process rather than on every commit; `SqliteBroker.atomic()` commits several
calls in one transaction (a worker's results, the deletes of their tasks and the receive of the next batch): one
write lock and one commit instead of three. The figures are in docs/benchmarks.md.
"""
from grid.queues.sqlite.broker import SqliteBroker
from grid.queues.sqlite.queue import SqliteQueue

__all__ = ["SqliteBroker", "SqliteQueue"]
