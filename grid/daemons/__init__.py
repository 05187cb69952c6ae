"""The grid's daemons (producer, worker, supervisor, collector) on one shared lifecycle."""
from grid.daemons.lifecycle import Daemon, main

__all__ = ["Daemon", "main"]
