"""The wire's limits and error codes, and the checks of one field each: what a decoder accepts, and the words of its
MessageError when it does not."""
from __future__ import annotations

import enum
import json
import re

from grid.errors import MessageError
from grid.queues.base import MAX_MESSAGE_BYTES

TYPE_DECIMAL = "Decimal"
ACCEPTED_TYPES = (None, "decimal", "dec", "Decimal")  # what the original worker accepted in `type`
MAX_INPUT_DIGITS = 1000  # far beyond anything factorizable; keeps a hostile input from costing more than parsing
MAX_ID_CHARS = 128  # task ids, job names and worker names
ATTRIBUTE_ALLOWANCE = 1024  # bytes kept free under the SQS limit for message attributes
MAX_BODY_BYTES = MAX_MESSAGE_BYTES - ATTRIBUTE_ALLOWANCE  # what the encoders may produce
REQUEST_MESSAGE_ID = "requestMessageId"  # message attribute on results: the task message's SQS message id
ECHO_CHARS = 64  # a rejected input is echoed back in the error result only up to this length
INPUT_LIMIT = 10**MAX_INPUT_DIGITS
MAX_SECONDS = 1e12  # epoch seconds: about the year 33658, far past any clock
MIN_ERROR_CODE, MAX_ERROR_CODE = 100, 599  # what a result's error code may be: HTTP's status codes, as Code's
_DIGITS = re.compile(r"[0-9]+")
_NEGATIVE = re.compile(r"-[0-9]+")


class Code(enum.IntEnum):
    BAD_INPUT = 400
    TOO_LARGE = 413
    OVER_BUDGET = 422
    WORKER_FAULT = 500


class Oversized:
    """A JSON integer literal too long to convert; kept as its digit count so the item gets a 413."""

    def __init__(self, digits: int):
        self.digits = digits

    def __repr__(self) -> str:
        return f"<integer of {self.digits} digits>"


def parse_name(key: str, value: object, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if type(value) is not str or not 1 <= len(value) <= MAX_ID_CHARS:
        raise MessageError(f"{key!r} must be a string of 1..{MAX_ID_CHARS} characters, got {short(value)}",
                           Code.BAD_INPUT)
    return value


def parse_time(key: str, value: object) -> float | None:
    if value is None:
        return None
    seconds = float(value) if type(value) is float or (type(value) is int and 0 <= value < MAX_SECONDS) else -1.0
    if not 0 <= seconds < MAX_SECONDS:  # also false for NaN
        raise MessageError(f"{key!r} must be epoch seconds (a number in 0..{MAX_SECONDS:.0e}), got {short(value)}",
                           Code.BAD_INPUT)
    return seconds


def parse_type(value: object) -> None:
    if value is None or value == TYPE_DECIMAL:
        return
    if type(value) is not str or value not in ACCEPTED_TYPES:
        raise MessageError(f"'type' must be \"Decimal\" (or absent), got {short(value)}", Code.BAD_INPUT)


def parse_number(key: str, value: object) -> int:
    """A positive integer sent as a decimal string (or, as the original producer did, a JSON integer)."""
    if type(value) is str and len(value) <= MAX_INPUT_DIGITS and value.isdigit() and value.isascii():
        return _positive(key, int(value), value)  # the common case, first
    if isinstance(value, Oversized) or (isinstance(value, str) and len(value) > MAX_INPUT_DIGITS):
        size = value.digits if isinstance(value, Oversized) else len(value)
        raise MessageError(f"{key!r} is {size} characters long: at most {MAX_INPUT_DIGITS} digits are allowed",
                           Code.TOO_LARGE)
    if type(value) is int:
        return _positive(key, value, str(value))
    if isinstance(value, str):
        if _DIGITS.fullmatch(value):
            return _positive(key, int(value), value)
        if _NEGATIVE.fullmatch(value):
            _positive(key, -1, value)
        raise MessageError(f"{key!r} is not a decimal integer: {short(value)} (only the digits 0-9: no sign, "
                           "space, point, exponent or prefix)", Code.BAD_INPUT)
    if type(value) is float:
        raise MessageError(f"{key!r} is a JSON number with a fraction or exponent ({value!r}): send integers as "
                           "decimal strings such as \"15\"", Code.BAD_INPUT)
    raise MessageError(f"{key!r} must be a decimal string such as \"15\", got {short(value)}", Code.BAD_INPUT)


def _positive(key: str, n: int, text: str) -> int:
    if n < 1:
        raise MessageError(f"{key!r} must be a positive integer, got {short(text)}", Code.BAD_INPUT)
    return n


def echo(value: object) -> str | None:
    """A task's input as an error result echoes it back: short text only."""
    if type(value) is int:
        value = str(value)
    return value if isinstance(value, str) and len(value) <= ECHO_CHARS else None


def parse_echo(value: object) -> str | None:
    """A result's `input`: the task's input as sent (an error result may echo a bad one)."""
    if value is None or (isinstance(value, str) and len(value) <= MAX_INPUT_DIGITS):
        return value
    if type(value) is int:
        return str(value)
    raise MessageError(f"'input' of a result must be a string of at most {MAX_INPUT_DIGITS} characters, got "
                       f"{kind(value)} {short(value)}", Code.BAD_INPUT)


_ASCII_DIGITS = b"0123456789"
DIGITS_AS_ZEROS = bytes.maketrans(_ASCII_DIGITS, b"0" * len(_ASCII_DIGITS))  # a text's shape: its runs of digits
_TOO_MANY_DIGITS = b"0" * (MAX_INPUT_DIGITS + 1)


def plain_texts(texts: list) -> bool:
    """Whether every one of `texts` is a decimal string of a positive number within the digit limit: checked on
    the strings joined, a few scans in C, where converting them one by one cost about a microsecond each (and
    str.isdigit, which knows every script's digits, five times what bytes' scans cost)."""
    if not texts:
        return True
    if not (all_of_type(texts, str) and all(texts)):
        return False
    return plain_input_text(",".join(texts), len(texts))


def plain_input_text(text: str, count: int) -> bool:
    """Whether `text` is `count` positive decimal numbers within the digit limit, joined by commas."""
    raw = _ascii(text)
    return (bool(raw) and raw.count(b",") == count - 1 and not raw.startswith(b",") and not raw.endswith(b",")
            and b",," not in raw and _plain_digits(raw, b","))


def plain_factor_text(text: str, count: int) -> bool:
    """Whether `text` is the factors of `count` results as the compact bundle writes them: positive decimal numbers
    within the digit limit, '*' between one result's, ',' between results' (which may have none: "3*5,,7")."""
    raw = _ascii(text)
    return (raw is not None and raw.count(b",") == count - 1 and not raw.startswith(b"*") and not raw.endswith(b"*")
            and not any(pair in raw for pair in (b"**", b"*,", b",*")) and _plain_digits(raw, b"*,"))


def _ascii(text: str) -> bytes | None:
    return text.encode("ascii") if type(text) is str and text.isascii() else None


def _plain_digits(raw: bytes, separators: bytes) -> bool:
    """Whether `raw`'s numbers between `separators` are digits only, none over the digit limit, none zero."""
    if raw.translate(None, _ASCII_DIGITS + separators) or _TOO_MANY_DIGITS in raw.translate(DIGITS_AS_ZEROS):
        return False
    leading_zero = raw.startswith(b"0") or any(bytes((separator, ord("0"))) in raw for separator in separators)
    return not leading_zero or min(int(n) for n in re.split(rb"[*,]", raw) if n) >= 1  # rare: tell "007" from "00"


def all_of_type(items: list, kind_: type) -> bool:
    """True when every item is exactly of `kind_` (not a subclass): one pass in C, not a Python test per item."""
    return not items or set(map(type, items)) == {kind_}


def kind(value: object) -> str:
    kinds = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
             int: "an integer", float: "a number", Oversized: "an integer"}
    return kinds.get(type(value), type(value).__name__)


def short(value: object) -> str:
    if isinstance(value, (str, bool, type(None))):
        text = json.dumps(value)
    elif type(value) in (int, float, Oversized):
        text = repr(value)
    else:  # never repr a container: it may be nested deeper than repr can recurse
        return kind(value)
    return text if len(text) <= 40 else text[:37] + "..."
