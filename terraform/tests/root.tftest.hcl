# Plan-level rules of the whole deployment, on a mocked AWS provider: IAM least privilege, encryption, the SSM
# parameters, scaling, and the validation of bad input.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }
  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }
  mock_data "aws_region" {
    defaults = {
      name = "eu-west-1"
    }
  }
  mock_data "aws_ami" {
    defaults = {
      id               = "ami-0123456789abcdef0"
      root_device_name = "/dev/xvda"
    }
  }
  mock_resource "aws_iam_instance_profile" {
    defaults = {
      arn = "arn:aws:iam::123456789012:instance-profile/grid"
    }
  }
  mock_resource "aws_sqs_queue" {
    defaults = {
      arn = "arn:aws:sqs:eu-west-1:123456789012:queue"
    }
  }
  mock_resource "aws_s3_bucket" {
    defaults = {
      arn = "arn:aws:s3:::grid-dev-results-123456789012-eu-west-1"
    }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = {
      arn = "arn:aws:logs:eu-west-1:123456789012:log-group:grid"
    }
  }
}

variables {
  region     = "eu-west-1"
  vpc_id     = "vpc-0123456789abcdef0"
  subnet_ids = ["subnet-0123456789abcdef0"]
}

run "least_privilege_and_encryption" {
  command = apply

  # Resource "*" only for actions without resource-level permissions.
  variables {
    kms_key_arn = null
  }

  assert {
    condition = alltrue(flatten([for f in module.fleet : [for s in jsondecode(f.policy_json).Statement : [
      for a in flatten([s.Action]) : s.Effect == "Allow" && !strcontains(a, "*")
    ]]]))
    error_message = "Every statement of every fleet's policy allows named actions only (no wildcard)."
  }
  assert {
    condition = alltrue(flatten([for f in module.fleet : [for s in jsondecode(f.policy_json).Statement : [
      for a in flatten([s.Action]) : contains([
        "cloudwatch:PutMetricData", "ec2:DescribeTags", "autoscaling:DescribeAutoScalingGroups",
        "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel",
        "ssmmessages:OpenDataChannel",
      ], a)
    ] if contains(flatten([s.Resource]), "*")]]))
    error_message = "Resource \"*\" only for actions that have no resource-level permissions."
  }
  assert {
    condition = alltrue([for f in module.fleet : anytrue([for s in jsondecode(f.policy_json).Statement :
    try(s.Action == "cloudwatch:PutMetricData" && s.Condition.StringEquals["cloudwatch:namespace"] == "AWSGridWithSQS/AppMetrics", false)])])
    error_message = "Metrics only in the grid's namespace."
  }
  assert {
    condition = alltrue([for role, f in module.fleet : alltrue([for s in jsondecode(f.policy_json).Statement :
      alltrue([for r in flatten([s.Resource]) : strcontains(r, "/applytest/") ? false : true])
      ]) && anytrue([for s in jsondecode(f.policy_json).Statement :
    contains(flatten([s.Resource]), "arn:aws:ssm:eu-west-1:123456789012:parameter/dev/AWSGridWithSQS/${role}")])])
    error_message = "Each fleet reads its own SSM path."
  }
  assert {
    condition     = [for s in jsondecode(module.fleet["supervisor"].policy_json).Statement : s.Resource if s.Action == "autoscaling:SetDesiredCapacity"] == ["arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:*:autoScalingGroupName/awsgrid-with-sqs-worker-asg"]
    error_message = "The supervisor sizes the worker group only."
  }
  assert {
    condition     = [for role, f in module.fleet : role if anytrue([for s in jsondecode(f.policy_json).Statement : s.Action == "autoscaling:SetInstanceProtection" && s.Resource == "arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:*:autoScalingGroupName/awsgrid-with-sqs-worker-asg"])] == ["worker"]
    error_message = "Workers alone protect instances from scale-in, in the worker group only."
  }
  assert {
    condition     = length([for s in jsondecode(module.fleet["producer"].policy_json).Statement : s if anytrue([for a in flatten([s.Action]) : startswith(a, "sqs:")])]) == 1
    error_message = "The producer has one SQS statement (send to the tasks queue)."
  }
  assert {
    condition     = alltrue([for q in [module.tasks_queue, module.results_queue] : q.name != q.dlq_name])
    error_message = "Each queue has its own dead-letter queue."
  }
  assert {
    condition     = aws_s3_bucket_public_access_block.results.block_public_acls && aws_s3_bucket_public_access_block.results.block_public_policy && aws_s3_bucket_public_access_block.results.ignore_public_acls && aws_s3_bucket_public_access_block.results.restrict_public_buckets
    error_message = "The result bucket blocks every kind of public access."
  }
  assert {
    condition     = one(aws_s3_bucket_server_side_encryption_configuration.results.rule).apply_server_side_encryption_by_default[0].sse_algorithm == "AES256"
    error_message = "Results are encrypted with SSE-S3 without a KMS key."
  }
  assert {
    condition     = length(aws_ssm_parameter.this) == length(jsondecode(file("grid-parameters.json")).parameters)
    error_message = "Every registry parameter has an SSM parameter."
  }
  assert {
    condition     = alltrue([for k, p in aws_ssm_parameter.this : p.name == "/dev/AWSGridWithSQS/${k}" && p.type == "String"])
    error_message = "SSM parameters live under /{env}/AWSGridWithSQS/{role}/{name}."
  }
  assert {
    condition     = aws_ssm_parameter.this["supervisor/scale_mode"].insecure_value == "target" && length(aws_autoscaling_policy.worker_backlog) == 1
    error_message = "Target tracking and the supervisor's scale_mode agree."
  }
  assert {
    condition     = aws_ssm_parameter.this["collector/result_store"].insecure_value == "s3://grid-dev-results-123456789012-eu-west-1/results"
    error_message = "The collector stores results in the bucket Terraform made."
  }
}

run "kms_key_everywhere" {
  command = plan

  variables {
    kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
  }

  assert {
    condition     = module.tasks_queue.name == "grid_tasks_queue" && alltrue([for p in aws_ssm_parameter.this : p.type == "SecureString" && p.key_id == var.kms_key_arn])
    error_message = "With a key, parameters are SecureStrings under it."
  }
  assert {
    condition     = alltrue([for g in aws_cloudwatch_log_group.this : g.kms_key_id == var.kms_key_arn])
    error_message = "With a key, the log groups use it."
  }
  assert {
    condition     = one(aws_s3_bucket_server_side_encryption_configuration.results.rule).apply_server_side_encryption_by_default[0].kms_master_key_id == var.kms_key_arn
    error_message = "With a key, the result bucket uses it."
  }
}

run "direct_mode_has_no_scaling_policy" {
  command = plan

  variables {
    scale_mode           = "direct"
    backlog_per_instance = 200
    name_prefix          = "prod-"
    parameters           = { "worker/batch_size" = "5", "supervisor/log_level" = "debug" }
  }

  assert {
    condition     = length(aws_autoscaling_policy.worker_backlog) == 0 && aws_ssm_parameter.this["supervisor/scale_mode"].insecure_value == "direct"
    error_message = "In direct mode the supervisor sizes the group; there is no target tracking policy."
  }
  assert {
    condition     = aws_ssm_parameter.this["supervisor/backlog_per_instance"].insecure_value == "200" && aws_ssm_parameter.this["worker/batch_size"].insecure_value == "5"
    error_message = "Variables and per-parameter overrides reach SSM."
  }
  assert {
    condition     = aws_ssm_parameter.this["supervisor/worker_asg_name"].insecure_value == "prod-awsgrid-with-sqs-worker-asg" && aws_ssm_parameter.this["worker/tasks_queue_name"].insecure_value == "prod-grid_tasks_queue"
    error_message = "The name prefix reaches the names and the parameters that carry them."
  }
}

run "rejects_a_bad_env" {
  command = plan
  variables {
    env = "no spaces!"
  }
  expect_failures = [var.env]
}

run "rejects_an_unknown_parameter" {
  command = plan
  variables {
    parameters = { "worker/batch_sise" = "5" }
  }
  expect_failures = [var.parameters]
}

run "rejects_a_parameter_out_of_range" {
  command = plan
  variables {
    parameters = { "worker/batch_size" = "11" }
  }
  expect_failures = [var.parameters]
}

run "rejects_a_bad_choice" {
  command = plan
  variables {
    parameters = { "worker/log_level" = "LOUD" }
  }
  expect_failures = [var.parameters]
}

run "rejects_overriding_a_name_terraform_sets" {
  command = plan
  variables {
    parameters = { "worker/tasks_queue_name" = "other" }
  }
  expect_failures = [var.parameters]
}

run "rejects_min_above_max" {
  command = plan
  variables {
    fleets = { worker = { min_size = 5, max_size = 2 } }
  }
  expect_failures = [var.fleets]
}

run "rejects_an_unknown_fleet" {
  command = plan
  variables {
    fleets = { janitor = { max_size = 1 } }
  }
  expect_failures = [var.fleets]
}

run "rejects_a_bad_ami_id" {
  command = plan
  variables {
    ami_id = "debian-12"
  }
  expect_failures = [var.ami_id]
}

run "rejects_no_subnets" {
  command = plan
  variables {
    subnet_ids = []
  }
  expect_failures = [var.subnet_ids]
}

run "rejects_a_retention_cloudwatch_does_not_offer" {
  command = plan
  variables {
    log_retention_days = 31
  }
  expect_failures = [var.log_retention_days]
}
