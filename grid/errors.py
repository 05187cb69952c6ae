"""The grid's own exceptions: every failure a user can cause or meet is one of these."""

EXIT_CONFIG = 2  # usage and configuration errors


class GridError(Exception):
    """Base of every error the grid raises on purpose."""

    exit_code = 1


class ConfigError(GridError):
    """A bad parameter, flag or broker URL: names the thing, its value, its source, what is allowed."""

    exit_code = EXIT_CONFIG


class QueueError(GridError):
    """A queue operation failed (the message says which queue and why)."""


class QueueNotFound(QueueError):
    """The named queue does not exist."""

    exit_code = EXIT_CONFIG


class QueueAccessDenied(QueueError):
    """The credentials may not use the queue."""

    exit_code = EXIT_CONFIG


class MessageError(GridError):
    """A message that cannot be decoded; `code` is the wire error code (400, 413, ...)."""

    def __init__(self, message: str, code: int = 400):
        super().__init__(message)
        self.code = code


class StoreError(GridError):
    """The result store could not be read or written (the message says which store and why); worth a retry."""


class StoreNotFound(StoreError):
    """No result store at the configured place (e.g. no such bucket)."""

    exit_code = EXIT_CONFIG


class StoreEmpty(StoreNotFound):
    """Nothing stored at the configured place yet: no file, or no result object under the prefix."""


class StoreAccessDenied(StoreError):
    """The credentials may not use the result store."""

    exit_code = EXIT_CONFIG


class InvalidTask(ConfigError):
    """Work the wire would refuse, found before it is sent; `code` is the wire's error code: 400 (bad input) or 413
    (too large)."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


class TaskFailed(GridError):
    """A task answered with an error; `code` is the wire's error code (400 bad input, 413 too large, 422 over the
    work budget, 500 worker fault), `result` the stored answer."""

    def __init__(self, message: str, code: int, result):
        super().__init__(message)
        self.code = code
        self.result = result


class JobTimeout(GridError, TimeoutError):
    """A job not answered within the time a caller waited; `progress` is how far it had come."""

    def __init__(self, message: str, progress):
        super().__init__(message)
        self.progress = progress
