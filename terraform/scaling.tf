# Target tracking keeps the supervisor's backlog_per_instance at the target (scale_mode = target); in direct mode the
# supervisor sets the group's desired capacity itself and there is no policy. Either way the supervisor reads its
# scale_mode from SSM, written from the same variable.

locals {
  backlog_metric = "backlog_per_instance"
}

resource "aws_autoscaling_policy" "worker_backlog" {
  count = var.scale_mode == "target" ? 1 : 0

  name                   = "${local.asg_names.worker}-backlog-per-instance"
  autoscaling_group_name = module.fleet["worker"].autoscaling_group_name
  policy_type            = "TargetTrackingScaling"

  target_tracking_configuration {
    target_value = local.backlog_per_instance

    customized_metric_specification {
      metric_name = local.backlog_metric
      namespace   = local.namespace
      statistic   = "Average"
      unit        = "Count"

      metric_dimension {
        name  = local.dimension
        value = local.values["supervisor/supervisor_asg_name"]
      }
    }
  }

  lifecycle {
    precondition {
      condition     = contains(local.metrics.cloudwatch.metrics, local.backlog_metric)
      error_message = "grid-metrics.json has no CloudWatch metric ${local.backlog_metric}: regenerate it (make terraform-exports) or change the policy."
    }
  }
}
