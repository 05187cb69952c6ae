"""The worker fleet: what a fleet is (here), how big it should be (`policy`), and the fleets the supervisor sizes: an
EC2 Auto Scaling group (`asg`) or local worker processes (`processes`), started as new interpreters or as forks of a
`zygote`."""
from __future__ import annotations

import abc
from dataclasses import dataclass

from grid.errors import GridError


class FleetError(GridError):
    """A fleet operation failed, e.g. a transient Auto Scaling error (the supervisor retries it)."""


@dataclass(frozen=True)
class FleetSize:
    """What a fleet holds now: `desired` as last set, `running` all members, `in_service` those doing work."""

    desired: int
    running: int
    in_service: int


class Fleet(abc.ABC):
    """A set of workers the supervisor sizes."""

    name: str

    @abc.abstractmethod
    def size(self) -> FleetSize: ...

    @abc.abstractmethod
    def set_desired(self, count: int) -> None: ...

    def close(self, wait: bool = True) -> None:
        """Release what the fleet holds: a local fleet stops its workers (and, with `wait`, lets them drain)."""
