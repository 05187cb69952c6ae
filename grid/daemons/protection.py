"""Scale-in protection of the worker's own instance while it has tasks in hand.

A worker on an instance of the workers' Auto Scaling group marks that instance ProtectedFromScaleIn when it takes work
after being idle, and clears the mark once it has been idle (nothing in hand, nothing received ahead) for
IDLE_SECONDS. When the supervisor lowers the group's desired capacity, Auto Scaling then terminates idle instances and
keeps the busy ones; on AWS it terminates the surplus later, once their workers let go of them.

One SetInstanceProtection request per busy/idle transition, never one per batch: a burst costs each worker two
requests, plus one when it starts (a worker before it may have left the instance protected). A failed request is
logged once (later ones at DEBUG) and never stops the worker; the instance keeps the mark it had, and a busy instance
that a scale-in takes after all is still drained: its worker finishes the batch in hand on SIGTERM.
"""
from __future__ import annotations

import http.client
import logging
import os
import time
from collections.abc import Callable

from grid import aws
from grid.config import INSTANCE_AUTO, INSTANCE_OFF
from grid.queues.url import broker_region, parse_broker_url

IDLE_SECONDS = 1.0  # idle this long (seen at two idle steps at least) before the instance is let go
IMDS_HOST = "169.254.169.254"
IMDS_TIMEOUT = 1.0  # seconds for each instance metadata request
TOKEN_TTL = "60"  # seconds an IMDSv2 token lives: it is used once, at start-up
CALL_SETTINGS = {"retries": {"mode": "standard", "max_attempts": 2}, "connect_timeout": 2, "read_timeout": 5}
# Where Linux on EC2 says so without a network call: Nitro instances (DMI vendor), and Xen ones (hypervisor uuid).
EC2_MARKS = (("/sys/devices/virtual/dmi/id/sys_vendor", "Amazon EC2"), ("/sys/hypervisor/uuid", "ec2"))

log = logging.getLogger("grid.worker")


class Protection:
    """The scale-in protection of one instance, set by `call(protected)` once per change: `busy()` when work is taken,
    `idle()` at each step that found none, `release()` at the end."""

    def __init__(self, call: Callable[[bool], None], what: str, idle_seconds: float = IDLE_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self._call, self.what, self.idle_seconds, self._clock = call, what, idle_seconds, clock
        self.protected: bool | None = None  # None: not known yet
        self.requests = 0  # calls made, failed ones included
        self._idle_since: float | None = None
        self._failed = False

    def busy(self) -> None:
        self._idle_since = None
        if self.protected is not True:
            self._set(True)

    def idle(self) -> None:
        if self.protected is False:
            return
        now = self._clock()
        if self._idle_since is None:
            self._idle_since = now
        elif now - self._idle_since >= self.idle_seconds:
            self._set(False)

    def release(self) -> None:
        if self.protected is not False:
            self._set(False)

    def _set(self, protected: bool) -> None:
        self.protected, self._idle_since = protected, None  # a failed call is not retried before the next transition
        self.requests += 1
        try:
            self._call(protected)
        except Exception as e:  # any failure of this side call: the worker's work goes on regardless
            level, self._failed = logging.DEBUG if self._failed else logging.WARNING, True
            log.log(level, "scale-in protection of %s: could not set it to %s: %s (the worker goes on; later "
                    "failures are logged at DEBUG)", self.what, protected, e)
            return
        log.info("scale-in protection of %s: %s", self.what, "on (tasks in hand)" if protected else "off (idle)")


def for_worker(cfg) -> Protection | None:
    """The protection of the worker's instance in worker_asg_name; None where there is none to hold: no instance
    (instance_id off, or auto off EC2) or a broker that is not SQS (the embedded queue runs local workers)."""
    if parse_broker_url(cfg.broker_url)[0] != "sqs" or cfg.instance_id == INSTANCE_OFF:
        return None
    instance = discover_instance_id() if cfg.instance_id == INSTANCE_AUTO else cfg.instance_id
    if not instance:
        return None
    client = aws.client("autoscaling", region=broker_region(cfg.broker_url), **CALL_SETTINGS)
    group = cfg.worker_asg_name

    def call(protected: bool) -> None:
        client.set_instance_protection(InstanceIds=[instance], AutoScalingGroupName=group,
                                       ProtectedFromScaleIn=protected)

    return Protection(call, f"instance {instance} in group {group!r}")


def discover_instance_id() -> str:
    """This EC2 instance's id from the instance metadata (IMDSv2); '' off EC2, where AWS_EC2_METADATA_DISABLED is
    true, or when the metadata does not answer (logged)."""
    if os.environ.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true" or not on_ec2():
        return ""
    connection = http.client.HTTPConnection(IMDS_HOST, timeout=IMDS_TIMEOUT)
    try:
        token = _imds(connection, "PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": TOKEN_TTL})
        return _imds(connection, "GET", "/latest/meta-data/instance-id", {"X-aws-ec2-metadata-token": token})
    except (OSError, http.client.HTTPException) as e:
        log.warning("scale-in protection off: the instance metadata (http://%s) did not give this instance's id: %s",
                    IMDS_HOST, e)
        return ""
    finally:
        connection.close()


def _imds(connection: http.client.HTTPConnection, method: str, path: str, headers: dict[str, str]) -> str:
    connection.request(method, path, headers=headers)
    response = connection.getresponse()
    body = response.read().decode()
    if response.status != 200:
        raise http.client.HTTPException(f"{method} {path}: HTTP {response.status}")
    return body.strip()


def on_ec2() -> bool:
    for path, mark in EC2_MARKS:
        try:
            with open(path) as f:
                if f.read().strip().startswith(mark):
                    return True
        except OSError:
            continue
    return False
