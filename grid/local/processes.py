"""The daemon processes of a run: the supervisor, the producer and the collector (the supervisor starts the
workers), forks of `grid local`'s zygote where there is one, else new interpreters; either way in their own session,
so a Ctrl-C at the terminal reaches only `grid local`, which stops them."""
from __future__ import annotations

import os
import signal
import time

from grid.daemons import collector, lifecycle, producer, supervisor, worker
from grid.fleet.processes import Process, new_process
from grid.fleet.zygote import Zygote
from grid.local.plan import Plan, RunFolder

STARTED = ("supervisor", "producer", "collector")  # the processes grid local starts; the supervisor starts the workers
# What its zygote runs: its daemons, and the workers of the supervisor's own zygote (forked from one of its forks).
MAINS = {"supervisor": supervisor.main, "producer": producer.main, "collector": collector.main, "worker": worker.main}
METRIC_INTERVAL = 1  # seconds between the supervisor's scaling steps: fast enough to watch
SCALE_OUT_POLL = 0.02  # seconds between the supervisor's backlog reads below max workers: a read of the embedded
# queue is cheap, and scale-out (from zero: at the first task) follows the backlog within this
BACKLOG_PER_WORKER = 5  # task messages per worker the supervisor aims at: the producer's first send (10 messages)
# starts two workers at once, where 10 (a full receive each) started the second one a step later
STORY_BACKLOG_PER_WORKER = 50  # ... in the demo's story: 0.1 s of its stream, so that one worker's hiccups do not start
# a second one (at 5 or 10 the fleet flapped 1-2-1 all through the stream: docs/demo.md), while the burst starts two
POLL_WAIT = 1  # seconds of a worker's long poll: an idle worker notices SIGTERM within this
VISIBILITY_TIMEOUT = 30  # seconds: a message of a killed worker comes back this soon (heartbeats extend it)
STOP_TIMEOUT = 60.0  # seconds a daemon may take to drain after SIGTERM before it is killed
SCALE_IN_COOLDOWN = 3  # seconds before scale-in: a paced run keeps its worker, a passing backlog its fleet


class Processes:
    """The daemon processes of a run (module docstring), by role. `interrupts` counts the Ctrl-Cs of `grid local`:
    each one hurries the daemons being stopped."""

    def __init__(self, folder: RunFolder, env: dict[str, str], interrupts: lifecycle.Stop, zygote: Zygote | None):
        self.folder, self.env, self.interrupts, self.zygote = folder, env, interrupts, zygote
        self.procs: dict[str, Process] = {}

    def start(self, role: str, *args: str) -> None:
        argv, env, output = [role, *args], {**self.env, "GRID_LOG_FILENAME": "-"}, self.folder.log(role)
        if self.zygote is not None:
            self.procs[role] = self.zygote.fork(argv, env, output)
        else:
            self.procs[role] = new_process(argv, env, output, stop_with_parent=False)
        self.folder.record_pids({name: p.pid for name, p in self.procs.items() if p.poll() is None})

    def running(self, role: str) -> bool:
        return role in self.procs and self.procs[role].poll() is None

    def failed(self) -> str | None:
        """A role that exited with an error, as a message naming its log."""
        for role, proc in self.procs.items():
            if proc.poll() not in (None, 0):
                return f"the {role} exited with code {proc.returncode}; see {self.folder.log(role)}"
        return None

    def stop(self, role: str, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM and wait (the daemon drains); a second Ctrl-C sends another (leave now); SIGKILL after `timeout`
        or a third Ctrl-C."""
        proc = self.procs.get(role)
        if proc is None:
            return None
        signals = 0
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline and self.interrupts.signals < 3:
            if signals < min(2, self.interrupts.signals or 1):
                proc.send_signal(signal.SIGTERM)
                signals += 1
            time.sleep(0.02)
        if proc.poll() is None:
            proc.kill()
        return proc.wait()


def role_env(folder: RunFolder, plan: Plan, max_workers: int, statsd_port: int) -> dict[str, str]:
    """The settings every daemon of the run shares (workers inherit the supervisor's)."""
    settings = {
        "GRID_SSM": "0", "GRID_BROKER_URL": folder.broker_url, "GRID_RESULT_STORE": folder.store,
        "GRID_LOG_LEVEL": "INFO", "GRID_STATSD_HOST": "127.0.0.1", "GRID_STATSD_PORT": str(statsd_port),
        "GRID_PRIME_MIN_BITS": str(plan.min_bits), "GRID_PRIME_MAX_BITS": str(plan.max_bits),
        "GRID_FACTORS_PER_TASK": str(plan.factors), "GRID_TASKS_PER_MESSAGE": str(plan.tasks_per_message),
        "GRID_METRIC_INTERVAL": str(METRIC_INTERVAL), "GRID_MIN_WORKERS": "0", "GRID_MAX_WORKERS": str(max_workers),
        "GRID_SCALE_IN_COOLDOWN": str(SCALE_IN_COOLDOWN), "GRID_SCALE_OUT_POLL_INTERVAL": str(SCALE_OUT_POLL),
        "GRID_BACKLOG_PER_INSTANCE": str(STORY_BACKLOG_PER_WORKER if plan.story else BACKLOG_PER_WORKER), "GRID_CONCURRENCY": "1",
        "GRID_QUEUE_POLLING_WAIT_TIME": str(POLL_WAIT), "GRID_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
    }
    return {**os.environ, **settings}
