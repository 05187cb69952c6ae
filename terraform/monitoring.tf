# Logs, the dashboard and the alarms. Every metric of the grid's namespace is one the code emits (grid-metrics.json,
# from grid.metrics.export(); a test checks the dashboard against it); the rest are AWS's own SQS, EC2 and Auto
# Scaling metrics.

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_338:The daemons' operational logs, not an audit trail: retention is var.log_retention_days (default 30), so an account that must keep a year sets 365
  for_each = toset(local.roles)

  name              = "/AWSGridWithSQS/${local.env}/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

locals {
  namespace = local.metrics.cloudwatch.namespace
  dimension = local.metrics.cloudwatch.dimension
  # statsd metrics arrive through each instance's CloudWatch agent, named <stats_prefix><name>, dimension: its group.
  statsd = {
    for m in local.metrics.statsd : "${m.role}/${m.name}" => [
      local.namespace, "${local.values["${m.role}/stats_prefix"]}${m.name}", local.dimension, local.asg_names[m.role]
    ]
  }
  # The supervisor's own metrics carry its supervisor_asg_name as the dimension.
  supervisor_metric = {
    for name in local.metrics.cloudwatch.metrics : name => [
      local.namespace, name, local.dimension, local.values["supervisor/supervisor_asg_name"]
    ]
  }
  sqs = {
    for name in [local.tasks_queue_name, local.results_queue_name, module.tasks_queue.dlq_name, module.results_queue.dlq_name] :
    name => { for metric in ["ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible", "ApproximateAgeOfOldestMessage"] : metric => ["AWS/SQS", metric, "QueueName", name] }
  }
  worker_group = ["AutoScalingGroupName", local.asg_names.worker]

  widgets = [
    {
      title = "Tasks per second"
      metrics = [
        [{ expression = "m1/PERIOD(m1)", label = "answered (workers)", id = "e1" }],
        [{ expression = "m2/PERIOD(m2)", label = "sent (producers)", id = "e2" }],
        [{ expression = "m3/PERIOD(m3)", label = "stored (collectors)", id = "e3" }],
        concat(local.statsd["worker/tps"], [{ id = "m1", stat = "Sum", visible = false }]),
        concat(local.statsd["producer/throughput"], [{ id = "m2", stat = "Sum", visible = false }]),
        concat(local.statsd["collector/results_stored"], [{ id = "m3", stat = "Sum", visible = false }]),
      ]
    },
    {
      title = "Backlog: tasks waiting or in work"
      metrics = [
        concat(local.supervisor_metric.total_backlog_count, [{ stat = "Maximum", label = "backlog (supervisor)" }]),
        concat(local.sqs[local.tasks_queue_name].ApproximateNumberOfMessagesVisible, [{ stat = "Maximum", label = "waiting" }]),
        concat(local.sqs[local.tasks_queue_name].ApproximateNumberOfMessagesNotVisible, [{ stat = "Maximum", label = "in work" }]),
        concat(local.sqs[local.results_queue_name].ApproximateNumberOfMessagesVisible, [{ stat = "Maximum", label = "results not yet stored" }]),
      ]
    },
    {
      title       = "Backlog per instance"
      metrics     = [concat(local.supervisor_metric.backlog_per_instance, [{ stat = "Average", label = "backlog per in-service worker" }])]
      annotations = { horizontal = [{ label = "target", value = local.backlog_per_instance }] }
    },
    {
      title = "Workers"
      metrics = [
        concat(local.supervisor_metric.desired_instances_count, [{ stat = "Maximum", label = "desired (supervisor)" }]),
        concat(local.supervisor_metric.all_instances_count, [{ stat = "Maximum", label = "running (supervisor)" }]),
        concat(["AWS/AutoScaling", "GroupDesiredCapacity"], local.worker_group, [{ stat = "Maximum", label = "desired (group)" }]),
        concat(["AWS/AutoScaling", "GroupInServiceInstances"], local.worker_group, [{ stat = "Maximum", label = "in service (group)" }]),
      ]
    },
    {
      title = "Dead-letter queues"
      metrics = [
        concat(local.sqs[module.tasks_queue.dlq_name].ApproximateNumberOfMessagesVisible, [{ stat = "Maximum", label = "tasks DLQ" }]),
        concat(local.sqs[module.results_queue.dlq_name].ApproximateNumberOfMessagesVisible, [{ stat = "Maximum", label = "results DLQ" }]),
      ]
    },
    {
      title = "Latency (ms)"
      metrics = [
        concat(local.statsd["collector/latency"], [{ stat = "Average", label = "submitted to answered, mean" }]),
        concat(local.statsd["collector/latency"], [{ stat = "Maximum", label = "submitted to answered, max" }]),
        concat(local.statsd["worker/execution_time"], [{ stat = "Average", label = "a batch's computation, mean" }]),
      ]
    },
    {
      title   = "Worker CPU (%)"
      metrics = [concat(["AWS/EC2", "CPUUtilization"], local.worker_group, [{ stat = "Average", label = "worker CPU" }])]
    },
    {
      title = "Errors"
      metrics = [
        concat(local.statsd["worker/task_errors"], [{ stat = "Sum", label = "tasks answered with an error" }]),
        concat(local.statsd["worker/worker_faults"], [{ stat = "Sum", label = "worker faults (retried)" }]),
        concat(local.statsd["supervisor/errors"], [{ stat = "Sum", label = "supervisor steps failed" }]),
        concat(local.statsd["collector/duplicates"], [{ stat = "Sum", label = "duplicate results dropped" }]),
      ]
    },
    {
      title   = "Age of the oldest task (s)"
      metrics = [concat(local.sqs[local.tasks_queue_name].ApproximateAgeOfOldestMessage, [{ stat = "Maximum", label = "oldest task" }])]
    },
  ]

  dashboard_body = jsonencode({
    widgets = [
      for i, w in local.widgets : {
        type   = "metric"
        x      = (i % 3) * 8
        y      = floor(i / 3) * 6
        width  = 8
        height = 6
        properties = merge({
          title   = w.title
          region  = data.aws_region.current.name
          view    = "timeSeries"
          stacked = false
          period  = 60
          metrics = w.metrics
        }, contains(keys(w), "annotations") ? { annotations = w.annotations } : {})
      }
    ]
  })
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = "${local.prefix}grid-${local.env}"
  dashboard_body = local.dashboard_body
}

resource "aws_cloudwatch_metric_alarm" "dlq_not_empty" {
  for_each = {
    tasks   = module.tasks_queue.dlq_name
    results = module.results_queue.dlq_name
  }

  alarm_name          = "${local.prefix}grid-${local.env}-${each.key}-dlq-not-empty"
  alarm_description   = "Messages in ${each.value}: ${each.key} failed ${local.max_receive_count} times. Look with `grid dlq peek --queue ${each.key}`, then redrive or purge."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "oldest_task" {
  alarm_name          = "${local.prefix}grid-${local.env}-oldest-task-age"
  alarm_description   = "A task has waited over ${var.oldest_task_alarm_seconds} s in ${local.tasks_queue_name}: the workers are not keeping up, or none runs."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = local.tasks_queue_name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.oldest_task_alarm_seconds
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
}
