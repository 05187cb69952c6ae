"""Broker URLs: which backend, and where.

    sqlite:///abs/path/grid.db     the embedded queue in an absolute path
    sqlite:relative/path/grid.db   the embedded queue relative to the working directory
    sqlite:///abs/path/grid.db?synchronous=full   also fsync every commit (survives power loss, slower)
    sqs://                         Amazon SQS as boto3 is configured (region from the usual chain)
    sqs://?endpoint_url=http://127.0.0.1:5000&region=us-east-1   any SQS-compatible server
"""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from grid.errors import ConfigError
from grid.queues.base import Broker
from grid.queues.sqlite import SqliteBroker

ALLOWED_FORMS = (
    "sqlite:///abs/path/grid.db, sqlite:relative/path.db (option ?synchronous=normal|full), "
    "sqs:// (options ?endpoint_url=http://host:port&region=us-east-1)"
)
_OPTIONS = {"sqlite": {"synchronous": ("normal", "full")}, "sqs": {"endpoint_url": None, "region": None}}


def open_broker(url: str) -> Broker:
    """The broker the URL names; a malformed URL is a ConfigError naming it and the allowed forms."""
    scheme, location, options = parse_broker_url(url)
    if scheme == "sqlite":
        return SqliteBroker(location, url=url, **options)
    from grid.queues.sqs import SqsBroker  # here, not at the top: a role on the embedded queue never loads botocore

    return SqsBroker(url=url, **options)


def parse_broker_url(url: str) -> tuple[str, str, dict[str, str]]:
    """(scheme, path or '', options) of a broker URL."""
    if not isinstance(url, str):
        raise _bad(url, "it is not a string")
    try:
        parts = urlsplit(url)
    except ValueError as e:  # e.g. an unclosed '[' (an IPv6 host)
        raise _bad(url, f"malformed URL ({e})") from None
    if parts.scheme not in _OPTIONS:
        raise _bad(url, f"unknown scheme {parts.scheme!r}")
    if parts.fragment:
        raise _bad(url, "a fragment (#...) has no meaning here")
    options = _options(url, parts.scheme, parts.query)
    if parts.scheme == "sqs":
        if parts.netloc or parts.path:
            raise _bad(url, "sqs:// takes no host or path; give a server as ?endpoint_url=...")
        return "sqs", "", options
    if parts.netloc:
        raise _bad(url, f"host {parts.netloc!r}: the embedded queue is a local file, write sqlite:///abs/path")
    if not parts.path or parts.path.endswith("/"):
        raise _bad(url, "it names no database file")
    return "sqlite", parts.path, options


def _options(url: str, scheme: str, query: str) -> dict[str, str]:
    try:
        pairs = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise _bad(url, f"malformed query {query!r}") from None
    options = {}
    for name, values in pairs.items():
        if name not in _OPTIONS[scheme]:
            raise _bad(url, f"unknown option {name!r} for {scheme} (known: {', '.join(_OPTIONS[scheme])})")
        allowed = _OPTIONS[scheme][name]
        if len(values) != 1 or not values[0] or (allowed and values[0] not in allowed):
            raise _bad(url, f"option {name}={values!r}: give it once" + (f", one of {allowed}" if allowed else ""))
        options[name] = values[0]
    return options


def _bad(url: object, why: str) -> ConfigError:
    return ConfigError(f"broker URL {url!r}: {why}; allowed forms: {ALLOWED_FORMS}")


def broker_region(broker_url: object) -> str | None:
    """The `region` option of an sqs:// broker URL: the grid's region for every AWS client (grid.aws); None for any
    other URL (boto3's chain decides)."""
    try:
        scheme, _, options = parse_broker_url(broker_url)
    except ConfigError:  # reported where broker_url is validated
        return None
    return options.get("region") if scheme == "sqs" else None
