"""The shared daemon lifecycle: steps, stop flag, signals, backoff, error handling; and the logging set-up."""
from __future__ import annotations

import io
import logging
import logging.handlers
import gc
import os
import signal
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grid.errors import ConfigError, QueueError, QueueNotFound
from grid.logs import setup_logging
from grid.metrics import Metrics
from grid.daemons.lifecycle import ERROR_MIN, IDLE_MAX, IDLE_MIN, Backoff, Daemon, main


class Scripted(Daemon):
    """A daemon whose steps follow a script: "busy", "idle", "stop", "signal" (SIGTERM to itself, "signal signal"
    twice), or an exception to raise."""

    role = "worker"

    def __init__(self, script):
        super().__init__(cfg=None, broker=None, metrics=Metrics("worker"))
        self.script = list(script)
        self.calls: list[str] = []
        self.pauses: list[float] = []

    def setup(self):
        self.calls.append("setup")

    def run_once(self):
        step = self.script.pop(0) if self.script else "stop"
        self.calls.append("step")
        if isinstance(step, BaseException):
            raise step
        if callable(step):
            step = step()
        if step == "stop":
            self.request_stop()
        for _ in range(step.count("signal") if isinstance(step, str) else 0):
            os.kill(os.getpid(), signal.SIGTERM)
        return step == "busy"

    def teardown(self):
        self.calls.append("teardown")

    def _pause(self, delay, deadline):
        self.pauses.append(delay)


@settings(max_examples=50, deadline=None)
@given(initial=st.floats(0.001, 10), factor=st.floats(1, 100), steps=st.integers(1, 30))
def test_backoff_doubles_from_initial_to_maximum_and_resets(initial, factor, steps):
    backoff = Backoff(initial, initial * factor)
    delays = [backoff.next() for _ in range(steps)]
    assert delays[0] == initial
    assert all(b == min(a * 2, initial * factor) for a, b in zip(delays, delays[1:]))
    backoff.reset()
    assert backoff.next() == initial


def test_run_calls_setup_steps_until_stopped_then_teardown():
    d = Scripted(["busy", "idle", "busy", "stop"])
    assert d.run() == 0
    assert d.calls == ["setup", "step", "step", "step", "step", "teardown"]
    assert d.stopping


def test_what_setup_made_is_out_of_the_garbage_collectors_passes_while_the_steps_run_and_back_after():
    frozen = []
    d = Scripted([lambda: frozen.append(gc.get_freeze_count()) or "busy", "stop"])
    assert d.run() == 0
    assert frozen[0] > 0 and gc.get_freeze_count() == 0


def test_idle_steps_back_off_and_work_resets_the_backoff():
    d = Scripted(["idle"] * 8 + ["busy", "idle", "stop"])
    d.run()
    assert d.pauses[:8] == [min(IDLE_MIN * 2**i, IDLE_MAX) for i in range(8)]
    assert d.pauses[8] == IDLE_MIN  # after the busy step
    assert len(d.pauses) == 9  # none after the busy step, none after the step that asked to stop


def test_a_transient_queue_error_is_retried_with_backoff():
    d = Scripted([QueueError("throttled"), QueueError("throttled"), "busy", "stop"])
    assert d.run() == 0
    assert d.pauses == [ERROR_MIN, ERROR_MIN * 2]
    assert d.calls.count("step") == 4


def test_an_outage_is_one_error_line_however_many_retries_then_one_line_when_it_ends(caplog):
    d = Scripted([QueueError("endpoint unreachable")] * 5 + ["busy", QueueError("endpoint unreachable"), "busy"])
    with caplog.at_level(logging.DEBUG, logger="grid.worker"):
        assert d.run() == 0
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "grid.worker"]
    errors = [text for level, text in lines if level >= logging.ERROR]
    assert len(errors) == 2 and all(t.startswith("endpoint unreachable; retrying in 1.0 s") for t in errors)
    recovered = [text for level, text in lines if level == logging.WARNING]
    assert len(recovered) == 2 and recovered[0].endswith("(5 failed tries)") and recovered[1].endswith("(1 failed tries)")
    assert sum(level == logging.DEBUG and "still failing" in text for level, text in lines) == 4
    assert d.pauses == [ERROR_MIN * 2 ** k for k in range(5)] + [ERROR_MIN]  # backoff doubles, and restarts after


class Endpoint:
    """A broker that only says when its latest successful call began."""

    answered = 0.0


def test_an_outage_ends_only_when_the_endpoint_answers_not_when_a_step_works_from_what_it_holds(caplog):
    """A pipelined worker computes batches it received before the outage: those steps succeed while every call
    fails, and the outage they sit in is still one error line and one recovery line."""
    endpoint = Endpoint()

    def answers():
        endpoint.answered = time.monotonic()
        return "busy"

    d = Scripted([QueueError("endpoint unreachable"), "busy", QueueError("endpoint unreachable"), "busy", answers,
                  QueueError("endpoint unreachable"), answers])
    d.broker = endpoint
    with caplog.at_level(logging.DEBUG, logger="grid.worker"):
        assert d.run() == 0
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "grid.worker"]
    assert [level for level, _ in lines if level >= logging.WARNING] == [logging.ERROR, logging.WARNING] * 2
    recovered = [text for level, text in lines if level == logging.WARNING]
    assert recovered[0].endswith("(2 failed tries)") and recovered[1].endswith("(1 failed tries)")


@pytest.mark.parametrize("error", [QueueNotFound("queue 'tasks' does not exist"), ConfigError("bad"),
                                   RuntimeError("bug")])
def test_a_permanent_error_ends_the_run_after_teardown(error):
    d = Scripted(["busy", error])
    with pytest.raises(type(error)):
        d.run()
    assert d.calls[-1] == "teardown"


def test_teardown_runs_when_setup_fails():
    class BadSetup(Scripted):
        def setup(self):
            raise QueueNotFound("queue 'tasks' does not exist")

    d = BadSetup([])
    with pytest.raises(QueueNotFound):
        d.run()
    assert d.calls == ["teardown"]


def test_sigterm_finishes_the_step_then_stops_with_exit_code_0():
    before = signal.getsignal(signal.SIGTERM)
    d = Scripted(["busy", "signal", "busy", "busy"])
    assert d.run() == 0
    assert d.calls == ["setup", "step", "step", "teardown"]
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_second_signal_leaves_at_once_with_128_plus_the_signal():
    d = Scripted(["busy", "signal signal", "busy"])
    assert d.run() == 128 + signal.SIGTERM
    assert d.forced
    assert d.calls == ["setup", "step", "step", "teardown"]


def test_max_seconds_ends_an_idle_run():
    class Idle(Daemon):
        role = "worker"

        def run_once(self):
            return False

    assert Idle(None, None, Metrics("worker")).run(max_seconds=0.2) == 0


def test_request_stop_from_another_thread_interrupts_a_sleep():
    d = Scripted([])
    threading.Timer(0.1, d.request_stop).start()
    d.sleep_until(float("inf"))
    assert d.stopping


def test_signal_handlers_are_not_installed_outside_the_main_thread():
    outcome = []
    thread = threading.Thread(target=lambda: outcome.append(Scripted(["busy"]).run()))
    thread.start()
    thread.join()
    assert outcome == [0]


class Forking(Daemon):
    """Records, at each hook, whether the broker's database and the log file exist yet."""

    role = "worker"
    seen: list[tuple[str, bool, bool]] = []

    @classmethod
    def prefork(cls, cfg, args):
        cls.seen.append(("prefork", *cls._files(cfg)))

    @classmethod
    def from_args(cls, cfg, broker, metrics, args):
        cls.seen.append(("from_args", *cls._files(cfg)))
        return cls(cfg, broker, metrics)

    @staticmethod
    def _files(cfg):
        return os.path.exists(cfg.broker_url.removeprefix("sqlite://")), os.path.exists(cfg.log_filename)

    def run_once(self):
        self.request_stop()
        return False


def test_prefork_runs_before_the_log_file_and_the_broker_are_opened(root_logger, tmp_path):
    code = main(Forking, ["--broker-url", f"sqlite://{tmp_path}/grid.db", "--log-filename", str(tmp_path / "w.log"),
                          "--statsd-host", ""])
    assert code == 0 and Forking.seen == [("prefork", False, False), ("from_args", True, True)]


# -- logging ------------------------------------------------------------------------------------------------------
class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_service_logs_to_a_rotating_file_in_a_directory_it_creates(root_logger, tmp_path):
    path = tmp_path / "var" / "log" / "worker-main.log"
    handler = setup_logging(str(path), "DEBUG", stream=io.StringIO())
    logging.getLogger("grid.worker").debug("task t-1: error 422")
    handler.flush()
    assert "DEBUG - grid.worker" in path.read_text() and "task t-1: error 422" in path.read_text()
    assert isinstance(handler, logging.handlers.RotatingFileHandler)


def test_a_terminal_gets_stderr_unless_the_file_was_set_explicitly(root_logger, tmp_path):
    stream = Terminal()
    setup_logging(str(tmp_path / "w.log"), "INFO", stream=stream)
    logging.getLogger("grid.worker").info("hello")
    assert "hello" in stream.getvalue() and not (tmp_path / "w.log").exists()
    setup_logging(str(tmp_path / "w.log"), "INFO", explicit=True, stream=stream)
    assert (tmp_path / "w.log").exists()


def test_dash_means_stderr_and_the_level_is_honoured(root_logger):
    stream = io.StringIO()
    setup_logging("-", "warning", stream=stream)
    logging.getLogger("grid.x").info("quiet")
    logging.getLogger("grid.x").warning("loud")
    assert "loud" in stream.getvalue() and "quiet" not in stream.getvalue()


def test_a_log_directory_that_cannot_be_created_is_a_config_error(root_logger, tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"log_filename='.*file/sub/w.log' from env GRID_LOG_FILENAME: cannot"):
        setup_logging(str(tmp_path / "file" / "sub" / "w.log"), "INFO", source="env GRID_LOG_FILENAME",
                      stream=io.StringIO())


def test_a_bad_level_names_the_parameter_and_the_choices(root_logger):
    with pytest.raises(ConfigError, match="log_level='LOUD' from flag --log-level: must be one of CRITICAL, ERROR"):
        setup_logging("-", "LOUD", source="flag --log-level")
