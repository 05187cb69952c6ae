"""The wire codec: tasks, results and errors as versioned JSON (grid.wire.codec), and the message model they decode
to (grid.wire.model): the original's one-item shapes (grid.wire.original), the bundles (grid.wire.bundles), the JSON
layer (grid.wire.jsontext), the checks of each field (grid.wire.fields)."""
from grid.wire.codec import decode_results, decode_tasks, encode_results, encode_tasks, pack_results, pack_tasks
from grid.wire.fields import (ATTRIBUTE_ALLOWANCE, MAX_BODY_BYTES, MAX_ID_CHARS, MAX_INPUT_DIGITS, REQUEST_MESSAGE_ID,
                              TYPE_DECIMAL, Code)
from grid.wire.jsontext import FORMAT_VERSION, OLDEST_WRITTEN
from grid.wire.model import (Decimals, Ids, Rejected, Result, Results, Same, Task, Tasks, factor_text, factor_texts,
                             has_none, id_run, single, split_id)

__all__ = [
    "ATTRIBUTE_ALLOWANCE", "FORMAT_VERSION", "MAX_BODY_BYTES", "MAX_ID_CHARS", "MAX_INPUT_DIGITS", "OLDEST_WRITTEN",
    "REQUEST_MESSAGE_ID", "TYPE_DECIMAL", "Code", "Decimals", "Ids", "Rejected", "Result", "Results", "Same", "Task", "Tasks",
    "decode_results", "decode_tasks", "encode_results", "encode_tasks", "factor_text", "factor_texts", "has_none",
    "id_run", "pack_results", "pack_tasks", "single", "split_id",
]
