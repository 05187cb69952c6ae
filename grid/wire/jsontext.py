"""The JSON layer: a message body to a JSON object (size, UTF-8, JSON, version checked) and back, orjson where it
reads and writes what the stdlib does."""
from __future__ import annotations

import json

import orjson

from grid.errors import MessageError
from grid.queues.base import MAX_MESSAGE_BYTES
from grid.wire.fields import DIGITS_AS_ZEROS, MAX_BODY_BYTES, MAX_INPUT_DIGITS, Code, Oversized, kind, short

FORMAT_VERSION = 3  # the newest this grid reads and writes (the compact bundle); the other shapes are written as 1
V1 = 1
TEXT_COLUMNS = 3  # from this version on, a compact bundle's numbers travel as one text a column, not a list
OLDEST_WRITTEN = 2  # the oldest compact bundle a writer may be asked for (config's format_version)
# orjson reads integer literals past 64 bits as floats: a body with a run of digits that long goes to the stdlib.
_LONG_RUNS = (b"0" * 20, b"-" + b"0" * 19)  # past 2**64 - 1, or below -2**63, may need that many digits


def _json_int(text: str) -> int | Oversized:
    if len(text.lstrip("-")) > MAX_INPUT_DIGITS:
        return Oversized(len(text.lstrip("-")))
    return int(text)


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)  # made once: json.dumps(**kw) builds one per call
_DECODER = json.JSONDecoder(parse_int=_json_int, parse_constant=_no_constant)


def load(body: str | bytes) -> dict:
    """The JSON object of a message body; MessageError when it is not one, or of a version this grid does not read."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        size = len(body)
        _check_size(size)
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError as e:
            raise MessageError(f"message body is not UTF-8 text ({e.reason} at byte {e.start})", Code.BAD_INPUT)
    elif isinstance(body, str):
        text = body
        _check_size(len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass")))
    else:
        raise MessageError(f"message body must be text, got {type(body).__name__}", Code.BAD_INPUT)
    try:
        doc = parse_json(text)
    except RecursionError:
        raise MessageError("message body is not valid JSON: nested too deeply", Code.BAD_INPUT) from None
    except ValueError as e:
        raise MessageError(f"message body is not valid JSON: {e}", Code.BAD_INPUT) from None
    if not isinstance(doc, dict):
        raise MessageError(f"message body must be a JSON object, got {kind(doc)}", Code.BAD_INPUT)
    version = doc.get("v", 1)
    if type(version) is not int or not 1 <= version <= FORMAT_VERSION:
        raise MessageError(f"format version v={short(version)} is not supported: this grid reads "
                           f"versions 1..{FORMAT_VERSION}", Code.BAD_INPUT)
    return doc


def parse_json(text: str) -> object:
    """orjson (several times faster) where it reads what the stdlib reads; else the stdlib, its hooks and messages."""
    raw = text.encode("utf-8", "surrogatepass")
    shape = raw.translate(DIGITS_AS_ZEROS)
    if not any(run in shape for run in _LONG_RUNS):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # the stdlib says what is wrong in its own words, or reads what orjson refuses (lone surrogates)
    return _DECODER.decode(text)


def _check_size(size: int) -> None:
    if size > MAX_MESSAGE_BYTES:
        raise MessageError(f"message body is {size} bytes, over the {MAX_MESSAGE_BYTES}-byte limit", Code.TOO_LARGE)


def dump(doc: dict, count: int, what: str) -> str:
    """The body of `doc`, which holds `count` `what`; MessageError (413) when it is over the size limit."""
    try:
        body = orjson.dumps(doc)
    except orjson.JSONEncodeError:  # a lone surrogate in an id read from a message: the stdlib escapes it
        body = _ENCODER.encode(doc).encode()
    if len(body) > MAX_BODY_BYTES:
        raise MessageError(f"{count} {what} encode to {len(body)} bytes, over the {MAX_BODY_BYTES}-byte message "
                           f"limit; put fewer {what} in one message", Code.TOO_LARGE)
    return body.decode()


def put_optional(doc: dict, **values) -> None:
    """Set the keys whose value is not None."""
    for key, value in values.items():
        if value is not None:
            doc[key] = value


def bundle_items(doc: dict, key: str, single_keys: tuple[str, ...], text: bool = False) -> list | str | None:
    """The bundle's item list under `key` (with `text`, the string of its items joined by commas), or None when
    `doc` is a single item."""
    if key not in doc:
        return None
    for single_key in single_keys:
        if single_key in doc:
            raise MessageError(f"message has both {key!r} (a bundle) and {single_key!r} (a single item)",
                               Code.BAD_INPUT)
    items = doc[key]
    if text and (type(items) is not str or not items):
        raise MessageError(f"{key!r} of a version {TEXT_COLUMNS} bundle must be a non-empty string of decimal numbers "
                           f"joined by commas, got {kind(items)} {short(items)}", Code.BAD_INPUT)
    if not text and (not isinstance(items, list) or not items):
        raise MessageError(f"{key!r} must be a non-empty JSON array, got {kind(items)}", Code.BAD_INPUT)
    return items
