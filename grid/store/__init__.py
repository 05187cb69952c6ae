"""The result store: results by task id, each id once, with latency queries and exports.

The contract (`Store`, in `base`) and two backends, chosen by `open_store` from the `result_store` value: a SQLite
file (`sqlite`), or objects in Amazon S3 under `s3://bucket/prefix` (`s3`).
"""
from __future__ import annotations

import os

from grid.errors import StoreEmpty
from grid.store.base import (DEFAULT_PERCENTILES, EXPORT_FORMATS, STORE_FORMS, Added, Store, StoreCounts,
                             export_record, format_seconds, latency, parse_store_location, percentile)
from grid.store.s3 import S3ResultStore
from grid.store.sqlite import ResultStore

__all__ = ["DEFAULT_PERCENTILES", "EXPORT_FORMATS", "STORE_FORMS", "Added", "ResultStore", "S3ResultStore", "Store",
           "StoreCounts", "export_record", "format_seconds", "latency", "open_store", "parse_store_location",
           "percentile"]


def open_store(location: str, *, source: str = "result store", create: bool = True) -> Store:
    """The result store at `location` (`STORE_FORMS`); a malformed one is a ConfigError naming it and the allowed
    forms. With create=False, a place that holds no store yet is StoreEmpty (exit 2): a reader makes nothing."""
    kind, where = parse_store_location(location)
    if kind == "s3":
        bucket, prefix = where
        return S3ResultStore(bucket, prefix, source=source, create=create)
    if not create and not os.path.exists(where):
        raise StoreEmpty(f"{source} {location!r}: no result store there (has a collector run?)")
    return ResultStore(where, source=source)
