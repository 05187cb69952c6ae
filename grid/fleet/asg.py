"""An EC2 Auto Scaling group of workers, as the supervisor sizes it."""
from __future__ import annotations

import logging

from grid import aws
from grid.errors import ConfigError
from grid.fleet import Fleet, FleetError, FleetSize

log = logging.getLogger("grid.fleet")

SCALE_MODES = ("target", "direct")  # target: the group's target tracking sizes it; direct: set_desired_capacity


class AsgFleet(Fleet):
    """An EC2 Auto Scaling group of workers.

    In `target` mode the group's target tracking policy does the sizing from the published
    `backlog_per_instance`; the supervisor sizes the group only when it is at zero, since target
    tracking cannot scale out from zero (capacity x ratio stays 0). In `direct` mode the supervisor
    sets the desired capacity itself, which reacts within one metric interval. Either way the
    group's own MinSize..MaxSize bound what the supervisor asks for.
    """

    def __init__(self, group_name: str, *, client=None, mode: str = "target"):
        if mode not in SCALE_MODES:
            raise ConfigError(f"scale_mode={mode!r}: must be one of {', '.join(SCALE_MODES)}")
        self.name = group_name
        self.mode = mode
        self._client = client if client is not None else aws.client("autoscaling")
        self._bounds = (0, 0)

    def size(self) -> FleetSize:
        group = self._describe()
        self._bounds = (group["MinSize"], group["MaxSize"])
        instances = group.get("Instances", [])
        in_service = sum(1 for i in instances if i.get("LifecycleState") == "InService")
        return FleetSize(desired=group["DesiredCapacity"], running=len(instances), in_service=in_service)

    def set_desired(self, count: int) -> None:
        current = self.size().desired
        low, high = self._bounds
        count = min(max(count, low), high)
        if count == current or (self.mode == "target" and current > 0):
            return
        self._call("set_desired_capacity", AutoScalingGroupName=self.name, DesiredCapacity=count, HonorCooldown=False)
        log.info("worker group %s: desired capacity %d -> %d", self.name, current, count)

    def _describe(self) -> dict:
        groups = self._call("describe_auto_scaling_groups", AutoScalingGroupNames=[self.name])["AutoScalingGroups"]
        if not groups:
            raise ConfigError(f"worker_asg_name={self.name!r}: no such Auto Scaling group in this account and region")
        return groups[0]

    def _call(self, operation: str, **kwargs):
        # Here, not at the top: a supervisor of local processes never loads botocore (start-up).
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
        from botocore.parsers import ResponseParserError

        try:
            return getattr(self._client, operation)(**kwargs)
        except NoCredentialsError as exc:
            raise ConfigError(f"Auto Scaling {operation} on {self.name!r}: no AWS credentials found") from exc
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code, text = error.get("Code", "?"), error.get("Message", str(exc))
            if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "InvalidClientTokenId"):
                raise ConfigError(f"Auto Scaling {operation} on {self.name!r} denied: {code}: {text}") from exc
            raise FleetError(f"Auto Scaling {operation} on {self.name!r} failed: {code}: {text}") from exc
        except (BotoCoreError, ResponseParserError) as exc:  # the second: an answer not in AWS's XML (an HTML 5xx page
            # of a proxy or a test server), which botocore cannot parse and which is no BotoCoreError
            raise FleetError(f"Auto Scaling {operation} on {self.name!r} failed: {exc}") from exc
