"""`grid local`: the whole grid on one machine, as real processes on the embedded queue in a run folder.

Its parts: `command` (the flags, and a session of a run folder: what `grid local --help` describes), `plan` (the run
folder and its plan), `processes` (the daemons' processes), `stats` (the statsd listener), `view` (the live view)
and `report` (report.json, report.png).
"""
from grid.local.command import add_parser, main

__all__ = ["add_parser", "main"]
