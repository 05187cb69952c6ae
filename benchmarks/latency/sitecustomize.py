"""Added latency for `make bench-sqs` (benchmarks/sqs.py): the benchmark puts this folder first on the PYTHONPATH of
the processes it measures, so Python imports this file at their start; nothing of it is in the product.

SQSBENCH_PATCH  queue: every call of the embedded queue (send, receive, delete, change visibility, counts) waits
                first; aws: every AWS request botocore sends waits first (a 'before-send' handler).
SQSBENCH_DELAY  seconds added to each call: a number (fixed), or lognormal:MEDIAN:P99 (a long-tailed draw).
SQSBENCH_COUNTS a folder: each process appends one line per call, `<operation> <payload bytes> <process CPU s>
                <epoch s>`, to
                its file `<pid>.<process name>` (one write per line, unbuffered: a process that ends by os._exit or
                SIGKILL loses nothing).
"""
import math
import os
import random
import time

Z99 = 2.3263  # the standard normal's 99th percentile


def _draw(spec: str):
    """A function that returns one delay in seconds, from SQSBENCH_DELAY."""
    if spec.startswith("lognormal:"):
        median, p99 = (float(x) for x in spec.split(":")[1:])
        mu, sigma = math.log(median), math.log(p99 / median) / Z99
        return lambda: _rng.lognormvariate(mu, sigma)
    fixed = float(spec)
    return lambda: fixed


class _Record:
    """This process's file of calls, opened at its first call (after a fork, the child opens its own)."""

    def __init__(self, folder: str):
        self.folder, self.pid, self.fd = folder, None, None

    def write(self, operation: str, size: int) -> None:
        if self.pid != os.getpid():
            self.pid = os.getpid()
            with open("/proc/self/comm") as f:
                name = f.read().strip().replace("/", "_")
            self.fd = os.open(os.path.join(self.folder, f"{self.pid}.{name}"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.write(self.fd, f"{operation} {size} {time.process_time():.4f} {time.time():.4f}\n".encode())


def _patch_queue(delay, record) -> None:
    from grid.queues.sqlite import SqliteQueue  # the embedded queue: the class `grid local` opens

    def sent(args, _):
        return sum(len(e.body) + sum(len(k) + len(v) for k, v in e.attributes.items()) for e in args[0])

    def received(_, messages):
        return sum(len(m.body) for m in messages)

    calls = {"send_batch": ("SendMessageBatch", sent), "receive": ("ReceiveMessage", received),
             "delete_batch": ("DeleteMessageBatch", None), "change_visibility": ("ChangeMessageVisibilityBatch", None),
             "counts": ("GetQueueAttributes", None)}
    for method, (operation, size) in calls.items():
        setattr(SqliteQueue, method, _delayed(getattr(SqliteQueue, method), operation, size, delay, record))


def _delayed(call, operation, size, delay, record):
    def wrapper(self, *args, **kwargs):
        time.sleep(delay())
        answer = call(self, *args, **kwargs)
        record.write(operation, size(args or tuple(kwargs.values()), answer) if size else 0)
        return answer

    return wrapper


def _patch_aws(delay, record) -> None:
    import botocore.session

    def before_send(request, event_name, **_):
        time.sleep(delay())
        body = request.body
        record.write(event_name.rsplit(".", 1)[-1], len(body) if body else 0)

    def after_call(http_response, event_name, **_):
        record.write("response", len(http_response.content or b""))

    init = botocore.session.Session.__init__

    def session_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.register("before-send", before_send)
        self.register("after-call", after_call)

    botocore.session.Session.__init__ = session_init


_rng = random.Random()
os.register_at_fork(after_in_child=lambda: _rng.seed())  # a forked worker draws its own delays

_kind = os.environ.get("SQSBENCH_PATCH")
if _kind:
    _patch = {"queue": _patch_queue, "aws": _patch_aws}[_kind]
    _patch(_draw(os.environ.get("SQSBENCH_DELAY", "0")), _Record(os.environ["SQSBENCH_COUNTS"]))
