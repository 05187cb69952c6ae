"""The one daemon lifecycle every role shares: set-up, a step, tear-down, a stop flag, backoff on a monotonic clock.

A role subclasses `Daemon` and writes `setup`, `run_once` and `teardown`; `main` turns flags, environment and SSM
into a `Config`, sets up logging and metrics, opens the broker and runs the daemon. Signal handlers only set the
stop flag: the first SIGTERM/SIGINT lets the role finish the task in hand; a second one leaves at once.
"""
from __future__ import annotations

import abc
import argparse
import contextlib
import gc
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator

from grid import config
from grid.errors import GridError, QueueError, StoreError
from grid.logs import setup_from_config
from grid.metrics import Metrics
from grid.queues import open_broker
from grid.queues.base import DEFAULT_MAX_RECEIVE_COUNT, Queue

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
SLEEP_SLICE = 0.1  # seconds: how soon an interruptible sleep notices a stop request
IDLE_MIN, IDLE_MAX = 0.05, 2.0  # seconds: backoff between idle steps, doubling
ERROR_MIN, ERROR_MAX = 1.0, 30.0  # seconds: backoff after a transient queue or store error, doubling
METRICS_EVERY = 0.2  # seconds between metric flushes of a busy role

log = logging.getLogger("grid.lifecycle")


class ForcedExit(SystemExit):
    """Raised by the second stop signal: leave now, exit code 128 + signal number."""


class Stop:
    """A stop request, from code (`request`) or from SIGTERM/SIGINT while `on_signals()` is active, and sleeps that
    end when it comes. Signal handlers only count and set the flag; with `force_on_repeat`, a signal that comes once
    a stop was requested raises ForcedExit (leave now); without it, the caller reads `signals` and decides."""

    def __init__(self, *, force_on_repeat: bool = True, poll: float = SLEEP_SLICE):
        self.requested = False
        self.signals = 0  # stop signals received
        self._force, self._poll = force_on_repeat, poll

    def request(self) -> None:
        """Stop; safe from any thread and from a signal handler."""
        self.requested = True

    def sleep_until(self, deadline: float) -> None:
        """Sleep until time.monotonic() reaches `deadline`, or a stop is requested."""
        while not self.requested and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, self._poll))

    def sleep(self, seconds: float) -> None:
        self.sleep_until(time.monotonic() + seconds)

    @contextlib.contextmanager
    def on_signals(self) -> Iterator[Stop]:
        """SIGTERM and SIGINT request the stop while inside (in the main thread; elsewhere, signals are not ours)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame) -> None:
        if self.requested and self._force:
            raise ForcedExit(128 + signum)
        self.signals += 1
        self.requested = True


class Backoff:
    """Delays that double from `initial` to `maximum` until `reset()`."""

    def __init__(self, initial: float, maximum: float):
        self.initial, self.maximum = initial, maximum
        self._next = initial

    def next(self) -> float:
        delay, self._next = self._next, min(self._next * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.initial


class Outage:
    """Transient errors in a row, logged as one outage: its first error at ERROR (what failed, the first delay), the
    retries that follow at DEBUG, and its end at WARNING (how long it lasted, how many tries failed). A role retrying an
    unreachable endpoint writes two lines per outage, not one per retry; the delays double as Backoff's."""

    def __init__(self, log: logging.Logger, initial: float = ERROR_MIN, maximum: float = ERROR_MAX,
                 answered: Callable[[], float] | None = None):
        self.log, self.backoff = log, Backoff(initial, maximum)
        self.answered = answered  # when the endpoint's latest successful call began (Broker.answered); None: unknown
        self.since: float | None = None  # time.monotonic() of the outage's first error; None: no outage
        self.retries = 0
        self.outages = 0  # outages seen since start

    def failed(self, error: Exception) -> float:
        """Count `error` in the outage (starting one if none is on); the delay before the next try."""
        delay = self.backoff.next()
        if self.since is None:
            self.since, self.retries = time.monotonic(), 0
            self.outages += 1
            self.log.error("%s; retrying in %.1f s, with backoff, until it answers (the retries are logged at DEBUG)",
                           error, delay)
        else:
            self.retries += 1
            self.log.debug("%s; still failing (retry %d), retrying in %.1f s", error, self.retries, delay)
        return delay

    def recovered(self) -> None:
        """A try succeeded: end the outage, if one was on and the endpoint answered a call made since it began, with
        one line. A step served from work in hand (a pipelined worker's batches ahead) shows nothing of the endpoint:
        the outage goes on."""
        if self.since is not None and self.answered is not None and self.answered() < self.since:
            return
        if self.since is not None:
            self.log.warning("recovered after %.1f s (%d failed tries)", time.monotonic() - self.since, self.retries + 1)
            self.since = None
        self.backoff.reset()


class Daemon(abc.ABC):
    """A long-running role: `run()` calls `setup()`, then `run_once()` until stopped, then `teardown()`."""

    role: str = ""
    idle_backoff = (IDLE_MIN, IDLE_MAX)

    def __init__(self, cfg, broker, metrics: Metrics):
        self.cfg, self.broker, self.metrics = cfg, broker, metrics
        self.log = logging.getLogger(f"grid.{self.role}")
        self.forced = False
        self._stop = Stop()

    # -- what a role writes -------------------------------------------------------------------------------------
    def setup(self) -> None:
        """Open queues and resources; runs once before the first step."""

    @abc.abstractmethod
    def run_once(self) -> bool:
        """One step; True when it did work, False when idle (the loop then backs off)."""

    def teardown(self) -> None:
        """Release what is in hand; runs once, also after an error. Metrics are flushed after it."""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Flags of the role beyond the registry's parameters."""

    @classmethod
    def prefork(cls, cfg, args: argparse.Namespace) -> None:
        """Runs before logging, metrics and the broker exist: a role that forks helper processes does it here, so
        that they share no open file, socket or database connection with it."""

    @classmethod
    def from_args(cls, cfg, broker, metrics: Metrics, args: argparse.Namespace) -> Daemon:
        return cls(cfg, broker, metrics)

    def open_queue(self, name: str) -> Queue:
        """The queue `name` (made on first use where the broker makes its queues: the embedded one)."""
        max_receive = getattr(self.cfg, "max_receive_count", DEFAULT_MAX_RECEIVE_COUNT)
        return self.broker.open_queue(name, max_receive_count=max_receive)

    # -- the lifecycle ------------------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Stop after the task in hand; safe from any thread and from a signal handler."""
        self._stop.request()

    @property
    def stopping(self) -> bool:
        return self._stop.requested

    def sleep_until(self, deadline: float) -> None:
        """Sleep until time.monotonic() reaches `deadline`, or a stop is requested."""
        self._stop.sleep_until(deadline)

    def run(self, max_seconds: float | None = None) -> int:
        """Run until stopped (or for `max_seconds`); returns the exit code: 0, or 128 + signal after a forced exit."""
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        with self._stop.on_signals():
            try:
                self.setup()
                # What start-up made (modules, configuration, clients) lives as long as the daemon: out of the garbage
                # collector's passes, which scanned it all again and again (a few % of a worker's and a collector's CPU).
                gc.freeze()
                self._loop(deadline)
                return 0
            except ForcedExit as e:
                self.forced = True
                self.log.warning("second stop signal: leaving now")
                return int(e.code)
            finally:
                gc.unfreeze()  # for a caller that goes on (a daemon run in process)
                try:
                    self.teardown()
                finally:
                    self.metrics.flush()

    def _loop(self, deadline: float | None) -> None:
        idle, errors = Backoff(*self.idle_backoff), Outage(self.log, answered=self._answered)
        while not self.stopping:
            if deadline is not None and time.monotonic() >= deadline:
                self.log.info("ran for the time allowed: stopping")
                break
            delay = self._step(idle, errors)
            self.metrics.flush(every=0.0 if delay else METRICS_EVERY)  # busy: a few datagrams a second, not per step
            if delay and not self.stopping:
                self._pause(delay, deadline)
        if self.stopping:
            self.log.info("stop requested: the step in hand is done, tearing down")

    def _answered(self) -> float:
        return math.inf if self.broker is None else self.broker.answered

    def _pause(self, delay: float, deadline: float | None) -> None:
        wake = time.monotonic() + delay
        self.sleep_until(wake if deadline is None else min(wake, deadline))

    def _step(self, idle: Backoff, errors: Outage) -> float:
        """Run one step; the delay before the next (0 after work)."""
        try:
            busy = self.run_once()
        except (QueueError, StoreError) as e:
            if e.exit_code != 1:  # a missing queue or store, or denied access, does not heal by waiting
                raise
            return errors.failed(e)
        errors.recovered()
        if busy:
            idle.reset()
            return 0.0
        return idle.next()


def build_parser(daemon_cls: type[Daemon], prog: str | None = None) -> argparse.ArgumentParser:
    """The daemon's flags: every registry parameter of its role, the role's own flags, --max-seconds."""
    parser = argparse.ArgumentParser(prog=prog or f"grid {daemon_cls.role}", description=daemon_cls.__doc__)
    config.add_arguments(parser, daemon_cls.role)
    daemon_cls.add_arguments(parser)
    parser.add_argument("--max-seconds", type=config.positive(float), default=None, metavar="S",
                        help="stop after S seconds (tests and demos)")
    return parser


def main(daemon_cls: type[Daemon], argv: list[str] | None = None, prog: str | None = None) -> int:
    """Parse flags, load the configuration, set up logging and metrics, open the broker and run the daemon.

    A GridError (bad parameter, missing queue, unreachable endpoint, ...) is one line on stderr and its exit code.
    """
    args = build_parser(daemon_cls, prog).parse_args(argv)
    try:
        return _run(daemon_cls, args)
    except GridError as e:
        if _logs_to_file():
            log.error("%s", e)
        print(f"grid {daemon_cls.role}: error: {e}", file=sys.stderr)
        return e.exit_code
    except Exception:
        log.exception("grid %s crashed", daemon_cls.role)
        raise


def _run(daemon_cls: type[Daemon], args: argparse.Namespace) -> int:
    cfg = config.load(daemon_cls.role, flags=args)
    daemon_cls.prefork(cfg, args)
    setup_from_config(cfg)
    metrics = Metrics.from_config(cfg)
    try:
        with open_broker(cfg.broker_url) as broker:
            daemon = daemon_cls.from_args(cfg, broker, metrics, args)
            log.info("grid %s starting (pid %d, broker %s)", daemon_cls.role, os.getpid(), cfg.broker_url)
            try:
                rc = daemon.run(args.max_seconds)
            except ForcedExit as e:  # a second signal during teardown
                daemon.forced, rc = True, int(e.code)
            log.info("grid %s stopped (exit code %d)", daemon_cls.role, rc)
    finally:
        metrics.close()
    if daemon.forced:  # don't wait for kernel threads still computing
        logging.shutdown()
        os._exit(rc)
    return rc


def _logs_to_file() -> bool:
    return any(isinstance(h, logging.FileHandler) for h in logging.getLogger().handlers)
