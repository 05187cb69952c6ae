"""The parameter registry and its loaders.

Every parameter is declared once (role, name, type, default, allowed values, help). A daemon's configuration is
built from layers, lowest first: defaults; SSM Parameter Store under /{AWS_ENV}/AWSGridWithSQS/{role}/; environment
variables GRID_<NAME>; command-line flags --<name>. It is validated once and frozen; a bad value is a ConfigError
naming the parameter, its value, the layer it came from and what is allowed.
"""
from __future__ import annotations

import argparse
import difflib
import logging
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from grid import aws
from grid.errors import ConfigError
from grid.fleet.asg import SCALE_MODES
from grid.logs import LEVELS
from grid.queues.url import broker_region, parse_broker_url
from grid.store import parse_store_location
from grid.wire import FORMAT_VERSION, OLDEST_WRITTEN

log = logging.getLogger(__name__)

ROLES = ("producer", "worker", "supervisor", "collector")
SSM_PREFIX = "AWSGridWithSQS"  # path /{env}/AWSGridWithSQS/{role}/{name}
ENV_PREFIX = "GRID_"
SSM_SWITCH = "GRID_SSM"  # 1: read SSM, 0: don't, unset: only for plain sqs:// (real AWS)
AWS_ENV_VAR = "AWS_ENV"
DEFAULT_AWS_ENV = "dev"
AWS_ENV_PATTERN = r"[A-Za-z0-9_\-]{1,15}"  # what the original's loadParams accepted (it silently fell back to dev)
STATE_DIR = os.path.join(os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "grid")
DEFAULT_BROKER_URL = "sqlite://" + os.path.join(STATE_DIR, "grid.db")
QUEUE_NAME = r"[A-Za-z0-9_-]{1,80}"
ASG_NAME = r"[\x21-\x7e ]{1,255}"
STATS_PREFIX = r"[A-Za-z0-9_.-]{0,100}"
INSTANCE_AUTO, INSTANCE_OFF = "auto", "off"  # the worker's instance_id: this EC2 instance's, or none
INSTANCE_ID = rf"i-[0-9a-f]{{8}}|i-[0-9a-f]{{17}}|{INSTANCE_AUTO}|{INSTANCE_OFF}"
_PATTERN_WORDS = {
    INSTANCE_ID: f"{INSTANCE_AUTO}, {INSTANCE_OFF}, or an EC2 instance id (i- and 8 or 17 hex digits)",
    QUEUE_NAME: "1..80 letters, digits, '-' or '_' (an SQS queue name)",
    ASG_NAME: "1..255 printable ASCII characters (an Auto Scaling group name)",
    STATS_PREFIX: "up to 100 letters, digits, '_', '.' or '-'",
}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")  # values of GRID_SSM


@dataclass(frozen=True)
class Param:
    role: str
    name: str
    type: type
    default: object
    help: str
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None
    pattern: str | None = None  # a str value must match it whole
    rule: str | None = None  # what is allowed, in words, where the type and limits don't say it
    check: Callable[[object], None] | None = field(default=None, repr=False, compare=False)  # raises ValueError

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def ssm_path(self, aws_env: str) -> str:
        return f"{ssm_root(aws_env, self.role)}/{self.name}"

    def allowed(self) -> str:
        """What values are allowed, in words."""
        if self.rule:
            return self.rule
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        if self.pattern:
            return _PATTERN_WORDS.get(self.pattern, f"a string matching {self.pattern}")
        if self.min is not None and self.max is not None:
            return f"{_num(self.min)}..{_num(self.max)}"
        if self.min is not None:
            return f">= {_num(self.min)}"
        return {int: "an integer", float: "a number"}.get(self.type, "a string")

    def parse(self, raw: object) -> object:
        """The typed value of `raw` (text from SSM or the environment, or a value from code); ValueError if bad."""
        value = _CONVERT[self.type](raw)
        if self.choices:
            value = _choose(value, self.choices)
        ok = (self.min is None or value >= self.min) and (self.max is None or value <= self.max)
        if not ok or (self.pattern and not re.fullmatch(self.pattern, value)):
            raise ValueError(f"must be {self.allowed()}")
        if self.check:
            self.check(value)
        return value


def ssm_root(aws_env: str, role: str) -> str:
    return f"/{aws_env}/{SSM_PREFIX}/{role}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _to_int(raw: object) -> int:
    if type(raw) is int:
        return raw
    if isinstance(raw, str) and re.fullmatch(r"[+-]?[0-9]{1,18}", raw.strip()):
        return int(raw)
    raise ValueError("must be an integer")


def _to_float(raw: object) -> float:
    readable = type(raw) in (int, float) or (isinstance(raw, str) and raw.isascii() and "_" not in raw)
    try:  # text in ASCII only, as for integers: float() also reads "1_000" and other scripts' digits
        value = float(raw) if readable else math.nan
    except (ValueError, OverflowError):
        value = math.nan
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _to_str(raw: object) -> str:
    if isinstance(raw, (str, os.PathLike)):
        return os.fspath(raw)
    raise ValueError("must be a string")


_CONVERT: dict[type, Callable[[object], object]] = {int: _to_int, float: _to_float, str: _to_str}


def _choose(value: object, choices: tuple) -> object:
    """The choice `value` names; strings match case-insensitively (`info` is INFO)."""
    for choice in choices:
        if value == choice or (isinstance(value, str) and value.strip().lower() == str(choice).lower()):
            return choice
    raise ValueError("must be one of " + ", ".join(map(str, choices)))


def _check_broker_url(url: str) -> None:
    try:
        parse_broker_url(url)
    except ConfigError as e:
        raise ValueError(str(e)) from None


def _check_result_store(location: str) -> None:
    try:
        parse_store_location(location)
    except ConfigError as e:
        raise ValueError(str(e)) from None


# ---- the registry


def _declare(roles: tuple[str, ...], name: str, type_: type, default, help_: str, **limits) -> list[Param]:
    """One declaration for parameters several roles share; `default` may depend on the role."""
    return [Param(role, name, type_, default(role) if callable(default) else default, help_, **limits)
            for role in roles]


_ALL = ROLES
_QUEUE_USERS = ("worker", "collector")
_DECLARATIONS = [
    _declare(_ALL, "broker_url", str, DEFAULT_BROKER_URL,
             "where the queues live: sqlite:///path (embedded, one machine), sqs:// (AWS), "
             "sqs://?endpoint_url=http://host:port (an SQS-compatible server)", check=_check_broker_url,
             rule="a broker URL: sqlite:///path/grid.db or sqs:// (?endpoint_url=http://host:port)"),
    _declare(_ALL, "log_filename", str, lambda role: f"/var/log/AWSGridWithSQS/{role}-main.log",
             "log file (rotated at 10 MB); '-' logs to stderr, as does a default name when run from a terminal",
             rule="a file path, or '-' for stderr"),
    _declare(_ALL, "log_level", str, "INFO", "logging level", choices=LEVELS),
    _declare(_ALL, "stats_prefix", str, lambda role: f"awsgridwithsqs_{role}_", "prefix of the statsd metric names",
             pattern=STATS_PREFIX),
    _declare(_ALL, "stats_rate", float, 1.0, "statsd sample rate", min=0.001, max=1),
    _declare(_ALL, "statsd_host", str, "localhost", "statsd server (the CloudWatch agent on AWS)"),
    _declare(_ALL, "statsd_port", int, 8125, "statsd UDP port", min=1, max=65535),
    _declare(_ALL, "max_receive_count", int, 5,
             "receives before a message goes to the dead-letter queue (when the grid creates the queue)",
             min=1, max=1000),
    _declare(("producer", "worker", "supervisor"), "tasks_queue_name", str, "grid_tasks_queue",
             "name of the tasks queue", pattern=QUEUE_NAME),
    _declare(("worker", "collector"), "results_queue_name", str, "grid_results_queue",
             "name of the results queue", pattern=QUEUE_NAME),
    _declare(("producer", "worker", "collector"), "batch_size", int, 10,
             "messages per queue call (send for the producer, receive for worker and collector)", min=1, max=10),
    _declare(_QUEUE_USERS, "queue_polling_wait_time", int, 10, "long-poll wait of a receive, seconds", min=0, max=20),
    _declare(_QUEUE_USERS, "queue_repolling_sleep_time", float, 0.0,
             "pause after an empty receive before polling again, seconds", min=0, max=3600),
    _declare(_QUEUE_USERS, "visibility_timeout", int, 120,
             "seconds a received message stays invisible to others (heartbeats extend it)", min=1, max=43200),
    _declare(("producer",), "prime_min_bits", int, 20, "smallest prime factor size, bits", min=2, max=256),
    _declare(("producer",), "prime_max_bits", int, 30, "largest prime factor size, bits", min=2, max=256),
    _declare(("producer",), "factors_per_task", int, 2,
             "prime factors in each task's number (1: a prime, as the original sent)", min=1, max=8),
    _declare(("producer",), "tasks_per_message", int, 1,
             "tasks bundled in one message (1: the original's one number per message)", min=1, max=1000),
    _declare(("producer", "worker"), "format_version", int, FORMAT_VERSION,
             f"version of the task (producer) or result (worker) bundles written: {FORMAT_VERSION}, a column's "
             f"numbers as one text; {OLDEST_WRITTEN}, a list of them, which grids before version {FORMAT_VERSION} "
             f"read (while a rollout from one runs, {OLDEST_WRITTEN} until every worker and collector reads "
             f"{FORMAT_VERSION})", min=OLDEST_WRITTEN, max=FORMAT_VERSION),
    _declare(("worker",), "work_budget", float, 60.0,
             "seconds of computation a task may take before it is answered with error 422", min=0.001, max=43200),
    _declare(("worker",), "concurrency", int, 0, "kernel threads per worker (0: one per CPU)", min=0, max=1024),
    _declare(("worker",), "heartbeat_interval", float, 0.0,
             "seconds between visibility extensions of messages in work (0: a third of visibility_timeout)",
             min=0, max=43200),
    _declare(("worker",), "pipeline_depth", int, 0,
             "batches a worker keeps received ahead and being answered while it computes (0: as the queue's latency "
             "asks; 1: receive, compute, answer one after the other)", min=0, max=16),
    _declare(("worker",), "instance_id", str, INSTANCE_AUTO,
             "EC2 instance the worker runs on, which it protects from scale-in in worker_asg_name while it has tasks "
             f"in hand ({INSTANCE_AUTO}: this instance, found in the instance metadata (IMDSv2) on EC2 with an sqs:// "
             f"broker, else none; {INSTANCE_OFF}: none)", pattern=INSTANCE_ID),
    _declare(("worker", "supervisor"), "worker_asg_name", str, "awsgrid-with-sqs-worker-asg",
             "Auto Scaling group of the workers (the supervisor sizes it; a worker protects its instance in it)",
             pattern=ASG_NAME),
    _declare(("supervisor",), "supervisor_asg_name", str, "awsgrid-with-sqs-supervisor-asg",
             "Auto Scaling group of the supervisors (the dimension of the published metrics)", pattern=ASG_NAME),
    _declare(("supervisor",), "metric_interval", int, 15, "seconds between scaling decisions and metrics",
             min=1, max=3600),
    _declare(("supervisor",), "scale_out_poll_interval", float, 15.0,
             "seconds between backlog reads while the fleet is below max_workers, so that a scale-out (from zero too) "
             "follows the backlog at once rather than at the next metric_interval; each read is one SQS request, and "
             "at or above metric_interval it changes nothing", min=0.01, max=3600),
    _declare(("supervisor",), "backlog_per_instance", int, 5000,
             "scaling target: tasks waiting or in work per worker (the original's target tracking value)",
             min=1, max=10_000_000),
    _declare(("supervisor",), "min_workers", int, 1, "fewest workers the supervisor keeps", min=0, max=10_000),
    _declare(("supervisor",), "scale_in_cooldown", float, 300.0,
             "seconds scale-in waits: the fleet keeps the most workers needed during the last this many seconds, "
             "and its last worker stops only once the tasks queue was idle (no message sent, waiting or in work) "
             "this long", min=0, max=86_400),
    _declare(("supervisor",), "max_workers", int, 4, "most workers the supervisor starts", min=0, max=10_000),
    _declare(("supervisor",), "scale_mode", str, "target",
             "target: publish backlog_per_instance for the ASG's target tracking; direct: set the size itself",
             choices=SCALE_MODES),
    _declare(("collector",), "result_store", str, os.path.join(STATE_DIR, "results.db"),
             "where the collector stores results (and grid results / grid status read them): a SQLite file, or "
             "s3://bucket/prefix, an object per stored batch in Amazon S3 that any machine may read",
             check=_check_result_store, rule="a file path, or s3://bucket/prefix"),
]
REGISTRY: tuple[Param, ...] = tuple(
    sorted((p for group in _DECLARATIONS for p in group), key=lambda p: ROLES.index(p.role))
)
_BY_ROLE = {role: tuple(p for p in REGISTRY if p.role == role) for role in ROLES}


def _relations(v: Mapping[str, object]) -> Iterator[tuple[str, str, str]]:
    """(first, relation, second) for each cross-parameter rule the values `v` break."""
    if "prime_min_bits" in v and v["prime_min_bits"] > v["prime_max_bits"]:
        yield "prime_min_bits", "<=", "prime_max_bits"
    if "min_workers" in v and v["min_workers"] > v["max_workers"]:
        yield "min_workers", "<=", "max_workers"
    if v.get("heartbeat_interval", 0) > 0 and v["heartbeat_interval"] >= v["visibility_timeout"]:
        yield "heartbeat_interval", "<", "visibility_timeout"


def params(role: str) -> tuple[Param, ...]:
    """The parameters of `role`, in declaration order."""
    try:
        return _BY_ROLE[role]
    except (KeyError, TypeError):
        raise ConfigError(f"role {role!r}: must be one of {', '.join(ROLES)}") from None


# ---- the effective configuration


class Config(Mapping[str, object]):
    """A role's validated, frozen configuration: cfg.batch_size or cfg["batch_size"]; cfg.source(name)."""

    __slots__ = ("role", "aws_env", "warnings", "_values", "_sources")

    def __init__(self, role: str, values: Mapping[str, object], sources: Mapping[str, str], *,
                 aws_env: str = DEFAULT_AWS_ENV, warnings: tuple[str, ...] = ()):
        for name, value in (("role", role), ("aws_env", aws_env), ("warnings", tuple(warnings)),
                            ("_values", dict(values)), ("_sources", dict(sources))):
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> object:
        try:
            return object.__getattribute__(self, "_values")[name]
        except KeyError:
            role = object.__getattribute__(self, "role")
            raise AttributeError(f"the {role} configuration has no parameter {name!r}") from None

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Config is frozen: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Config is frozen: cannot delete {name!r}")

    def __getitem__(self, name: str) -> object:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Config({self.role!r}, {self._values!r})"

    def __reduce__(self):
        return _rebuild, (self.role, self._values, self._sources, self.aws_env, self.warnings)

    def source(self, name: str) -> str:
        """Where the value came from: "default", "SSM /dev/AWSGridWithSQS/worker/batch_size", "env GRID_BATCH_SIZE"
        or "flag --batch-size"."""
        return self._sources[name]


def _rebuild(role, values, sources, aws_env, warnings) -> Config:
    return Config(role, values, sources, aws_env=aws_env, warnings=warnings)


def add_arguments(parser: argparse.ArgumentParser, role: str) -> None:
    """One --flag per parameter of `role`; unset flags stay None so they don't override lower layers."""
    group = parser.add_argument_group(
        f"{role} parameters", f"each also from env GRID_<NAME> or SSM {ssm_root('<AWS_ENV>', role)}/<name>")
    for p in params(role):
        help_ = f"{p.help} (default {p.default}; {p.allowed()}; env {p.env})"
        group.add_argument(p.flag, dest=p.name, default=None, metavar=p.type.__name__.upper(),
                           help=help_.replace("%", "%%"))


def positive(kind: type) -> Callable[[str], object]:
    """An argparse type for a flag outside the registry: a finite number > 0 of `kind` (int or float)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of type {kind.__name__}") from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"{text!r} must be a finite number > 0")
        return value

    return parse


def load(role: str, *, flags: Mapping[str, object] | argparse.Namespace | None = None,
         environ: Mapping[str, str] = os.environ, ssm_client=None) -> Config:
    """The configuration of `role` from defaults, SSM, environment and flags; ConfigError (exit 2) if a value is bad.

    SSM is read when `ssm_client` is given, when GRID_SSM=1, or when GRID_SSM is unset and the broker URL is plain
    sqs:// (real AWS): a laptop needs no AWS account.
    """
    specs = {p.name: p for p in params(role)}
    aws_env = _aws_env(environ)
    env_layer = {name: environ[p.env] for name, p in specs.items() if p.env in environ}
    layers = {"flag": _flag_layer(flags, specs), "env": env_layer}
    warnings = _env_warnings(environ)
    if _ssm_wanted(environ, layers, ssm_client):
        layers["SSM"], ssm_warnings = _ssm_layer(role, aws_env, ssm_client, specs, _broker_url(layers))
        warnings += ssm_warnings
    values, sources, errors = _resolve(specs, layers, aws_env)
    if not errors:
        errors = [f"{a}={values[a]} ({sources[a]}) must be {rel} {b}={values[b]} ({sources[b]})"
                  for a, rel, b in _relations(values)]
    if errors:
        raise ConfigError(errors[0] if len(errors) == 1 else f"bad {role} configuration:\n  " + "\n  ".join(errors))
    for warning in warnings:
        log.warning("%s", warning)
    return Config(role, values, sources, aws_env=aws_env, warnings=tuple(warnings))


def _resolve(specs: Mapping[str, Param], layers: Mapping[str, dict], aws_env: str) -> tuple[dict, dict, list[str]]:
    """Each parameter's value from its highest layer (flag, env, SSM, default), its source, and the errors."""
    values, sources, errors = {}, {}, []
    for name, p in specs.items():
        layer = next((layer for layer in ("flag", "env", "SSM") if name in layers.get(layer, {})), None)
        raw = layers[layer][name] if layer else p.default
        sources[name] = _source(layer, p, aws_env)
        try:
            values[name] = p.parse(raw)
        except ValueError as e:
            errors.append(f"{name}={_shown(raw)} from {sources[name]}: {e}")
    return values, sources, errors


def _aws_env(environ: Mapping[str, str]) -> str:
    env = environ.get(AWS_ENV_VAR)
    if env is None:
        return DEFAULT_AWS_ENV
    if not re.fullmatch(AWS_ENV_PATTERN, env):
        raise ConfigError(f"{AWS_ENV_VAR}={env!r} from env {AWS_ENV_VAR}: must be 1..15 letters, digits, '_' or '-' "
                          f"(it names the SSM path /{{{AWS_ENV_VAR}}}/{SSM_PREFIX}/...; unset means {DEFAULT_AWS_ENV})")
    return env


def _flag_layer(flags: Mapping[str, object] | argparse.Namespace | None, specs: Mapping[str, Param]) -> dict:
    if flags is None:
        return {}
    items = vars(flags) if isinstance(flags, argparse.Namespace) else flags
    return {name: value for name, value in items.items() if name in specs and value is not None}


def _source(layer: str | None, p: Param, aws_env: str) -> str:
    names = {None: "default", "flag": f"flag {p.flag}", "env": f"env {p.env}", "SSM": f"SSM {p.ssm_path(aws_env)}"}
    return names[layer]


def _shown(raw: object) -> str:
    text = str(raw)
    return text if text and not any(c.isspace() for c in text) and len(text) <= 200 else repr(text)[:200]


def _ssm_wanted(environ: Mapping[str, str], layers: Mapping[str, dict], ssm_client) -> bool:
    if ssm_client is not None:
        return True
    switch = environ.get(SSM_SWITCH, "").strip().lower()
    if switch in _TRUE + _FALSE:
        return switch in _TRUE
    if switch:
        raise ConfigError(f"{SSM_SWITCH}={environ[SSM_SWITCH]!r} from env {SSM_SWITCH}: must be 1 (read SSM) or "
                          "0 (don't); unset reads SSM only when broker_url is plain sqs:// (real AWS)")
    return _is_real_aws(_broker_url(layers))


def _broker_url(layers: Mapping[str, dict]) -> object:
    """The broker URL of the flags or the environment (SSM is read after this decision), else the default."""
    return layers["flag"].get("broker_url", layers["env"].get("broker_url", DEFAULT_BROKER_URL))


def _is_real_aws(url: object) -> bool:
    """True for sqs:// without an endpoint_url: Amazon SQS itself, where SSM Parameter Store is at hand."""
    try:
        scheme, _, options = parse_broker_url(url)
    except ConfigError:  # reported when broker_url is validated
        return False
    return scheme == "sqs" and "endpoint_url" not in options


def _ssm_layer(role: str, aws_env: str, client, specs: Mapping[str, Param],
               broker_url: object) -> tuple[dict, list[str]]:
    """The values under /{env}/AWSGridWithSQS/{role}/, and a warning for each name that is not a parameter."""
    root = ssm_root(aws_env, role)
    found = _read_ssm(client, root, broker_url)
    warnings = [f"SSM {root}/{name}: not a {role} parameter, ignored{_did_you_mean(name, specs)}"
                for name in found if name not in specs]
    return {name: value for name, value in found.items() if name in specs}, warnings


def _read_ssm(client, root: str, broker_url: object = None) -> dict[str, str]:
    """The parameters under `root`. The client's endpoint is boto3's choice (AWS_ENDPOINT_URL_SSM, AWS_ENDPOINT_URL,
    the profile, AWS), never the broker URL's endpoint_url, which names an SQS server; its region is the broker
    URL's, if it gives one (grid.aws)."""
    import botocore.exceptions  # here, not at the top: a role on the embedded queue never loads botocore (start-up)

    try:
        if client is None:
            client = aws.client("ssm", region=broker_region(broker_url))
        pages = client.get_paginator("get_parameters_by_path").paginate(Path=root, WithDecryption=True)
        return {p["Name"][len(root) + 1:]: p["Value"] for page in pages for p in page.get("Parameters", [])}
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
        raise ConfigError(f"cannot read SSM parameters under {root}: {e}; set {SSM_SWITCH}=0 to run without SSM, "
                          f"or {AWS_ENV_VAR} to pick another environment") from None


def _env_warnings(environ: Mapping[str, str]) -> list[str]:
    """Warnings for GRID_ variables that look like a misspelt parameter (others may belong to other tools)."""
    known = {p.env for p in REGISTRY} | {SSM_SWITCH}
    warnings = []
    for name in sorted(n for n in environ if n.startswith(ENV_PREFIX) and n not in known):
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.85)
        if close:
            warnings.append(f"env {name}: not a grid parameter, ignored; did you mean {close[0]}?")
    return warnings


def _did_you_mean(name: str, specs: Mapping[str, Param]) -> str:
    close = difflib.get_close_matches(name, specs, n=1, cutoff=0.8)
    return f"; did you mean {close[0]}?" if close else ""


# ---- output


def export_registry() -> dict:
    """The registry as JSON-able data, for Terraform's SSM parameters, Ansible defaults and the README's table."""
    return {
        "format": 1,
        "roles": list(ROLES),
        "ssm_path": f"/{{env}}/{SSM_PREFIX}/{{role}}/{{name}}",
        "aws_env": {"variable": AWS_ENV_VAR, "default": DEFAULT_AWS_ENV, "pattern": AWS_ENV_PATTERN},
        "ssm_switch": SSM_SWITCH,
        "parameters": [_export(p) for p in REGISTRY],
    }


def _export(p: Param) -> dict:
    return {
        "role": p.role, "name": p.name, "type": p.type.__name__, "default": p.default,
        "ssm_value": _text(p.default), "help": p.help, "allowed": p.allowed(), "min": p.min, "max": p.max,
        "choices": list(p.choices) if p.choices else None, "pattern": p.pattern, "env": p.env, "flag": p.flag,
        "ssm_name": f"{p.role}/{p.name}",
    }


def _text(value: object) -> str:
    """A value as SSM (String parameters) and environment variables hold it."""
    return _num(value) if isinstance(value, float) else str(value)


def show(cfg: Config) -> str:
    """The effective configuration: a line per parameter with its source, then any warnings."""
    rows = [(name, _text(value)) for name, value in cfg.items()]
    width = max(len(name) for name, _ in rows)
    value_width = min(max(len(value) for _, value in rows), 50)
    lines = [f"# grid {cfg.role} configuration (AWS_ENV={cfg.aws_env})"]
    lines += [f"{name:<{width}} = {value:<{value_width}}  # {cfg.source(name)}" for name, value in rows]
    lines += [f"# warning: {w}" for w in cfg.warnings]
    return "\n".join(lines)
