"""The `grid` command: the daemons, and tools to submit work, read results, inspect queues and configuration."""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TextIO

from grid import __version__, config
from grid.client import Client, Progress, parse_number
from grid.errors import ConfigError, GridError, QueueNotFound, StoreEmpty, StoreError
from grid.fleet import FleetError
from grid.queues import open_broker
from grid.queues.base import MAX_BATCH, Queue
from grid.store import format_seconds

QUEUES = ("tasks", "results")
PEEK_VISIBILITY = 30  # seconds the messages `grid dlq peek` shows stay hidden from other readers


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in config.ROLES:  # a daemon's process imports its own modules, not every command's (start-up)
        return importlib.import_module(f"grid.daemons.{argv[0]}").main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        return args.handler(args) or 0
    except GridError as e:
        print(f"grid {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grid", description=__doc__)
    parser.add_argument("--version", action="version", version=f"grid {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for role in config.ROLES:
        commands.add_parser(role, help=f"run the {role} daemon (grid {role} --help lists its parameters)")
    _submit_parser(commands)
    _results_parser(commands)
    _status_parser(commands)
    _dlq_parser(commands)
    _config_parser(commands)
    from grid import local  # here, not at the top: grid local imports every daemon (a daemon's start-up, above)

    local.add_parser(commands)
    return parser


def _with_params(parser: argparse.ArgumentParser, *names: str) -> None:
    """Flags for a few registry parameters (broker URL, queue names); others come from the environment and SSM."""
    helps = {p.name: p.help for role in config.ROLES for p in config.params(role)}
    for name in names:
        parser.add_argument("--" + name.replace("_", "-"), dest=name, default=None, help=helps.get(name))


def _load(role: str, args: argparse.Namespace):
    names = {p.name for p in config.params(role)}
    return config.load(role, flags={k: v for k, v in vars(args).items() if k in names and v is not None})


# ---- grid submit


def _submit_parser(commands) -> None:
    p = commands.add_parser("submit", help="send numbers to factorize as one job; prints the job id")
    p.add_argument("numbers", nargs="*", metavar="N", help="decimal integers >= 1")
    p.add_argument("--file", metavar="PATH", help="read numbers from PATH ('-': stdin), whitespace separated")
    p.add_argument("--job", metavar="ID", help="the job id (default: a new one)")
    _with_params(p, "broker_url", "tasks_queue_name", "tasks_per_message")
    p.set_defaults(handler=submit)


def submit(args: argparse.Namespace) -> int:
    with _client(args) as client:
        numbers = list(_numbers(args))
        if not numbers:
            raise ConfigError("no numbers to submit: give them as arguments, with --file PATH, or on stdin")
        print(client.submit(numbers, args.job).id)
    return 0


def _client(args: argparse.Namespace) -> Client:
    """The API's client, with the registry flags the command was given."""
    names = ("broker_url", "result_store", "tasks_queue_name", "tasks_per_message")
    return Client(**{name: getattr(args, name) for name in names if getattr(args, name, None) is not None})


def _numbers(args: argparse.Namespace) -> Iterator[int]:
    sources: list[tuple[str, Iterable[str]]] = [("argument", args.numbers)]
    if args.file == "-" or (args.file is None and not args.numbers and not sys.stdin.isatty()):
        sources.append(("stdin", _words(sys.stdin)))
    elif args.file is not None:
        try:
            with open(args.file) as f:
                sources.append((args.file, list(_words(f))))
        except OSError as e:
            raise ConfigError(f"--file {args.file!r}: cannot read it ({e.strerror})") from None
    for where, words in sources:
        for position, word in enumerate(words, 1):
            yield parse_number(word, f"{where} {position}")


def _words(stream: TextIO) -> Iterator[str]:
    for line in stream:
        yield from line.split()


# ---- grid results


def _results_parser(commands) -> None:
    p = commands.add_parser("results", help="counts, errors and latency of the stored results, or a job's results")
    p.add_argument("--job", metavar="ID", help="only this job")
    p.add_argument("--format", choices=("summary", "jsonl", "csv"), default="summary",
                   help="summary (default), or every result as JSON lines or CSV")
    _with_params(p, "result_store")
    p.set_defaults(handler=results)


def results(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.format == "summary":
            print("\n".join(summary_lines(client.progress(args.job), args.job)))
        else:
            client.export(sys.stdout, args.format, args.job)
    return 0


def summary_lines(progress: Progress, job: str | None = None) -> list[str]:
    codes = ", ".join(f"{code}: {count}" for code, count in progress.by_code.items()) or "none"
    shown = ", ".join(f"p{p} {format_seconds(v)}" for p, v in progress.latency.items())
    return [f"results{'' if job is None else f' of job {job}'}: {progress.answered} ({progress.ok} ok, "
            f"{progress.failed} errors)", f"errors by code: {codes}", f"latency: {shown}"]


# ---- grid status


def _status_parser(commands) -> None:
    p = commands.add_parser("status", help="queue depths, in flight, DLQ depths, fleet size, last results")
    p.add_argument("--last", type=config.positive(int), default=5, metavar="N",
                   help="how many of the last results to show")
    _with_params(p, "broker_url", "tasks_queue_name", "results_queue_name", "result_store", "worker_asg_name")
    p.set_defaults(handler=status)


def status(args: argparse.Namespace) -> int:
    cfg = _load("worker", args)
    with open_broker(cfg.broker_url) as broker:
        for name in (cfg.tasks_queue_name, cfg.results_queue_name):
            print(_queue_line(broker, name))
    print(_fleet_line(args, cfg.broker_url))
    print(*_store_lines(args), sep="\n")
    return 0


def _queue_line(broker, name: str) -> str:
    try:
        queue = broker.queue(name)
        c = queue.counts()
        dlq = queue.dead_letter
        dead = "no DLQ" if dlq is None else f"DLQ {dlq.name}: {dlq.counts().total}"
        return f"queue {name}: {c.visible} waiting, {c.in_flight} in flight, {c.delayed} delayed; {dead}"
    except QueueNotFound:
        return f"queue {name}: missing"


def _fleet_line(args: argparse.Namespace, broker_url: str) -> str:
    from grid.daemons import supervisor  # here, as grid local above

    path = supervisor.status_path(broker_url)
    if path is not None:
        obs = supervisor.read_status(path)
        if obs is None:
            return "fleet: no supervisor has run on this queue"
        age = time.time() - obs.at
        return (f"fleet {obs.fleet_name}: {obs.fleet.in_service} in service, {obs.fleet.running} running, "
                f"desired {obs.desired} (supervisor seen {age:.0f} s ago: backlog {obs.backlog}, "
                f"{obs.in_flight} in flight)")
    return _asg_line(args, broker_url)


def _asg_line(args: argparse.Namespace, broker_url: str) -> str:
    from grid.daemons import supervisor  # here, as grid local above

    cfg = _load("supervisor", args)
    try:
        fleet, _ = supervisor.build_fleet(cfg, "asg")
        size = fleet.size()
    except (FleetError, ConfigError) as e:
        return f"fleet {cfg.worker_asg_name}: unavailable ({e})"
    return f"fleet {fleet.name}: {size.in_service} in service, {size.running} instances, desired {size.desired}"


def _store_lines(args: argparse.Namespace) -> list[str]:
    client = _client(args)
    where = client.result_store
    try:
        with client:
            lines = [f"result store {where}"] + ["  " + line for line in summary_lines(client.progress())]
            for r in client.last(args.last):
                answer = " x ".join(map(str, r.factors)) if r.ok else f"error {r.error_code}: {r.error_message}"
                lines.append(f"  {r.task_id}: {r.n} = {answer}")
    except StoreEmpty:
        return [f"result store {where}: none yet"]
    except StoreError as e:  # the queues and the fleet are shown; the store's trouble is one line
        return [f"result store {where}: unavailable ({e})"]
    return lines


# ---- grid dlq


def _dlq_parser(commands) -> None:
    p = commands.add_parser("dlq", help="the dead-letter queues: peek, redrive, purge")
    p.add_argument("action", choices=("peek", "redrive", "purge"))
    p.add_argument("--queue", choices=QUEUES, default="tasks", help="whose dead-letter queue (default: tasks)")
    p.add_argument("--max", type=config.positive(int), default=None, metavar="N", help="at most N messages (peek: 10)")
    _with_params(p, "broker_url", "tasks_queue_name", "results_queue_name")
    p.set_defaults(handler=dlq)


def dlq(args: argparse.Namespace) -> int:
    cfg = _load("worker", args)
    name = cfg.tasks_queue_name if args.queue == "tasks" else cfg.results_queue_name
    with open_broker(cfg.broker_url) as broker:
        queue = broker.queue(name)
        dead = queue.dead_letter
        if dead is None:
            raise ConfigError(f"queue {name!r} has no dead-letter queue")
        if args.action == "peek":
            for line in peek(dead, args.max or 10):
                print(line)
        elif args.action == "redrive":
            print(f"moved {queue.redrive(args.max)} messages from {dead.name} back to {name}")
        else:
            dead.purge()
            print(f"purged {dead.name}")
    return 0


def peek(queue: Queue, limit: int) -> list[str]:
    """Up to `limit` messages of `queue`, shown and then released at once for others to read."""
    seen, lines = [], []
    while len(seen) < limit:
        batch = queue.receive(min(MAX_BATCH, limit - len(seen)), visibility_timeout=PEEK_VISIBILITY)
        if not batch:
            break
        seen += [m.receipt for m in batch]
        lines += [json.dumps({"message_id": m.message_id, "receive_count": m.receive_count, "body": m.body})
                  for m in batch]
    for start in range(0, len(seen), MAX_BATCH):
        queue.change_visibility(seen[start:start + MAX_BATCH], 0)
    return lines or [f"{queue.name} is empty"]


# ---- grid config


def _config_parser(commands) -> None:
    p = commands.add_parser("config", help="the effective configuration of a role, or the parameter registry")
    p.add_argument("action", choices=("show", "export"))
    p.add_argument("--role", choices=config.ROLES, default="worker", help="show: whose configuration (default: worker)")
    p.add_argument("--output", metavar="PATH", help="export: write to PATH instead of stdout")
    p.set_defaults(handler=config_command)


def config_command(args: argparse.Namespace) -> int:
    if args.action == "show":
        print(config.show(config.load(args.role)))
        return 0
    text = json.dumps(config.export_registry(), indent=2, default=str) + "\n"
    if args.output:
        try:
            with open(args.output, "w") as out:
                out.write(text)
        except OSError as e:
            raise ConfigError(f"--output {args.output!r}: cannot write it ({e.strerror})") from None
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
