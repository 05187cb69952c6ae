"""Queues with SQS semantics: the contract and its backends (SQS via boto3, embedded SQLite)."""
from grid.queues.base import (
    MAX_BATCH,
    BatchResult,
    Broker,
    Message,
    Queue,
    QueueCounts,
    SendEntry,
)
from grid.queues.url import open_broker

__all__ = ["MAX_BATCH", "BatchResult", "Broker", "Message", "Queue", "QueueCounts", "SendEntry", "open_broker"]
