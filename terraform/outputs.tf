output "env" {
  description = "The grid's AWS_ENV."
  value       = local.env
}

output "broker_url" {
  description = "The grid's broker URL (GRID_BROKER_URL)."
  value       = local.broker_url
}

output "result_store" {
  description = "The collector's result store (GRID_RESULT_STORE)."
  value       = local.result_store
}

output "grid_environment" {
  description = "Environment for running grid commands against this deployment from your machine (e.g. grid status)."
  value = {
    AWS_ENV            = local.env
    AWS_REGION         = var.region
    AWS_DEFAULT_REGION = var.region
    GRID_BROKER_URL    = local.broker_url
    GRID_SSM           = "1"
  }
}

output "queues" {
  description = "Name, URL and ARN of each queue and its dead-letter queue."
  value = {
    for name, q in { tasks = module.tasks_queue, results = module.results_queue } : name => {
      name                 = q.name
      url                  = q.url
      arn                  = q.arn
      dlq_name             = q.dlq_name
      dlq_url              = q.dlq_url
      dlq_arn              = q.dlq_arn
    }
  }
}

output "autoscaling_groups" {
  description = "Auto Scaling group name per role."
  value       = { for role, f in module.fleet : role => f.autoscaling_group_name }
}

output "instance_roles" {
  description = "IAM role ARN per role's instances."
  value       = { for role, f in module.fleet : role => f.iam_role_arn }
}

output "launch_templates" {
  description = "Launch template ID and latest version per role."
  value       = { for role, f in module.fleet : role => { id = f.launch_template_id, version = f.launch_template_version } }
}

output "ami_id" {
  description = "The AMI the fleets launch."
  value       = data.aws_ami.grid.id
}

output "ssm_parameters" {
  description = "SSM path => value of every grid parameter written."
  value       = { for key, p in aws_ssm_parameter.this : p.name => local.values[key] }
}

output "result_bucket" {
  description = "The result store's S3 bucket."
  value       = aws_s3_bucket.results.bucket
}

output "results_reader_policy_arn" {
  description = "Attach to the IAM roles of the grid's users: read the results (grid results, grid status)."
  value       = aws_iam_policy.results_reader.arn
}

output "log_groups" {
  description = "CloudWatch log group per role."
  value       = { for role, g in aws_cloudwatch_log_group.this : role => g.name }
}

output "dashboard_url" {
  description = "The grid's CloudWatch dashboard."
  value       = "https://${var.region}.console.aws.amazon.com/cloudwatch/home?region=${var.region}#dashboards:name=${aws_cloudwatch_dashboard.this.dashboard_name}"
}

output "dashboard_name" {
  description = "Name of the grid's CloudWatch dashboard."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}

output "scaling_policy" {
  description = "Name of the worker group's target tracking policy (null in direct mode)."
  value       = one(aws_autoscaling_policy.worker_backlog[*].name)
}
