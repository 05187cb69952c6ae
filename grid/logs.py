"""Logging set-up shared by every daemon: a rotating file as a service, stderr from a terminal."""
from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from typing import TextIO

from grid.errors import ConfigError

MAX_LOG_BYTES = 10 * 1024 * 1024  # per file before rotation, as the original
LOG_BACKUPS = 5  # rotated files kept
LOG_FORMAT = "%(asctime)s - %(levelname)s - %(name)s[%(process)d] - %(message)s"
STDERR = ("", "-")  # log_filename values that mean "log to stderr"
LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG", "NOTSET")
# The AWS SDK's DEBUG output is the wire: request headers and the signed canonical request, the session token in
# them. These loggers stay at INFO at least, whatever log_level says, so no credential reaches a log file.
SDK_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3")


def setup_logging(
    log_filename: str,
    log_level: str,
    *,
    explicit: bool = False,
    source: str = "default",
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send the root logger to `log_filename` (rotating) or to `stream` (stderr by default); returns the handler.

    A file is used when running as a service (stderr is not a terminal) or when the file name was set `explicitly`
    (not a default); "-" or "" always means stderr. `source` names where the values came from, for error messages.
    """
    level = _level(log_level, source)
    stream = stream if stream is not None else sys.stderr
    if log_filename in STDERR or (stream.isatty() and not explicit):
        handler: logging.Handler = logging.StreamHandler(stream)
    else:
        handler = _file_handler(log_filename, source)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.INFO))
    return handler


def setup_from_config(cfg, stream: TextIO | None = None) -> logging.Handler:
    """setup_logging with the daemon's `log_filename` and `log_level`."""
    source = cfg.source("log_filename")
    return setup_logging(
        cfg.log_filename, cfg.log_level, explicit=source != "default", source=source, stream=stream
    )


def _level(name: str, source: str) -> int:
    if str(name).upper() not in LEVELS:
        raise ConfigError(f"log_level={name!r} from {source}: must be one of {', '.join(LEVELS)}")
    return getattr(logging, str(name).upper())


def _file_handler(path: str, source: str) -> logging.Handler:
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        return logging.handlers.RotatingFileHandler(path, maxBytes=MAX_LOG_BYTES, backupCount=LOG_BACKUPS)
    except OSError as e:
        raise ConfigError(
            f"log_filename={path!r} from {source}: cannot create or open the log file in {directory} "
            f"({e.strerror or e}); give a writable path, or '-' to log to stderr"
        ) from e
