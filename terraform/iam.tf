# One IAM policy per fleet, least privilege: each statement names the resources it acts on. Resource "*" appears only
# for actions that have no resource-level permissions in IAM (each says so).

locals {
  arn_base = {
    ssm         = "arn:${data.aws_partition.current.partition}:ssm:${var.region}:${data.aws_caller_identity.current.account_id}"
    autoscaling = "arn:${data.aws_partition.current.partition}:autoscaling:${var.region}:${data.aws_caller_identity.current.account_id}"
    ec2         = "arn:${data.aws_partition.current.partition}:ec2:${var.region}:${data.aws_caller_identity.current.account_id}"
  }
  # A group's ARN holds a UUID known only once it exists; this pattern names exactly the group of that name.
  asg_arns = { for role, name in local.asg_names : role => "${local.arn_base.autoscaling}:autoScalingGroup:*:autoScalingGroupName/${name}" }

  sqs_consume = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueUrl", "sqs:GetQueueAttributes"]

  common_statements = {
    for role in local.roles : role => concat(
      [
        {
          Sid      = "ReadOwnParameters"
          Effect   = "Allow"
          Action   = ["ssm:GetParametersByPath", "ssm:GetParameters", "ssm:GetParameter"]
          Resource = ["${local.arn_base.ssm}:parameter${local.ssm_roots[role]}", "${local.arn_base.ssm}:parameter${local.ssm_roots[role]}/*"]
        },
        {
          Sid      = "ShipOwnLogs" # the CloudWatch agent: the role's log file to the role's log group
          Effect   = "Allow"
          Action   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
          Resource = [aws_cloudwatch_log_group.this[role].arn, "${aws_cloudwatch_log_group.this[role].arn}:log-stream:*"]
        },
        {
          Sid       = "PublishGridMetrics" # PutMetricData has no resource-level permissions: the namespace condition scopes it
          Effect    = "Allow"
          Action    = "cloudwatch:PutMetricData"
          Resource  = "*"
          Condition = { StringEquals = { "cloudwatch:namespace" = local.metrics.agent.namespace } }
        },
        {
          Sid      = "ReadInstanceTags" # the CloudWatch agent's AutoScalingGroupName dimension; ec2:Describe* has no resource-level permissions
          Effect   = "Allow"
          Action   = "ec2:DescribeTags"
          Resource = "*"
        },
      ],
      [for statement in [
        {
          Sid      = "SessionManagerRegister"
          Effect   = "Allow"
          Action   = "ssm:UpdateInstanceInformation"
          Resource = "${local.arn_base.ec2}:instance/*"
        },
        {
          Sid      = "SessionManagerChannels" # ssmmessages has no resource types: "*" is the only form IAM accepts
          Effect   = "Allow"
          Action   = ["ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"]
          Resource = "*"
        },
      ] : statement if var.session_manager],
      [for statement in [
        {
          Sid      = "UseGridKey"
          Effect   = "Allow"
          Action   = ["kms:Decrypt", "kms:GenerateDataKey"]
          Resource = var.kms_key_arn
        },
      ] : statement if var.kms_key_arn != null],
    )
  }

  role_statements = {
    producer = [
      {
        Sid      = "SendTasks"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage", "sqs:GetQueueUrl", "sqs:GetQueueAttributes"]
        Resource = module.tasks_queue.arn
      },
    ]
    worker = concat(
      [
        {
          Sid      = "TakeTasks"
          Effect   = "Allow"
          Action   = local.sqs_consume
          Resource = module.tasks_queue.arn
        },
        {
          Sid      = "SendResults"
          Effect   = "Allow"
          Action   = ["sqs:SendMessage", "sqs:GetQueueUrl", "sqs:GetQueueAttributes"]
          Resource = module.results_queue.arn
        },
        {
          Sid      = "ProtectOwnInstance" # from scale-in while its worker has tasks in hand (instance_id)
          Effect   = "Allow"
          Action   = "autoscaling:SetInstanceProtection"
          Resource = local.asg_arns.worker
        },
      ],
      [for statement in [
        {
          Sid      = "EndOwnTerminationWait"
          Effect   = "Allow"
          Action   = ["autoscaling:CompleteLifecycleAction", "autoscaling:RecordLifecycleActionHeartbeat"]
          Resource = local.asg_arns.worker
        },
      ] : statement if var.worker_drain_seconds > 0],
    )
    supervisor = [
      {
        Sid      = "ReadTasksBacklog"
        Effect   = "Allow"
        Action   = ["sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
        Resource = module.tasks_queue.arn
      },
      {
        Sid      = "DescribeGroups" # autoscaling:Describe* has no resource-level permissions
        Effect   = "Allow"
        Action   = "autoscaling:DescribeAutoScalingGroups"
        Resource = "*"
      },
      {
        Sid      = "SizeWorkerGroup"
        Effect   = "Allow"
        Action   = "autoscaling:SetDesiredCapacity"
        Resource = local.asg_arns.worker
      },
    ]
    collector = [
      {
        Sid      = "TakeResults"
        Effect   = "Allow"
        Action   = local.sqs_consume
        Resource = module.results_queue.arn
      },
      {
        Sid      = "StoreResults"
        Effect   = "Allow"
        Action   = ["s3:PutObject", "s3:GetObject"]
        Resource = "${aws_s3_bucket.results.arn}/${var.result_prefix}/*"
      },
      local.list_results_statement,
    ]
  }

  policy_statements = { for role in local.roles : role => concat(local.role_statements[role], local.common_statements[role]) }

  list_results_statement = {
    Sid       = "ListResults"
    Effect    = "Allow"
    Action    = "s3:ListBucket"
    Resource  = aws_s3_bucket.results.arn
    Condition = { StringLike = { "s3:prefix" = [var.result_prefix, "${var.result_prefix}/*"] } }
  }
}

# For the roles of the grid's users: read the results from anywhere (`grid results`, `grid status`).
resource "aws_iam_policy" "results_reader" {
  name        = "${local.prefix}grid-${local.env}-results-reader"
  description = "Read the grid's results (${local.env}): s3://${aws_s3_bucket.results.bucket}/${var.result_prefix}/"
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [
        {
          Sid      = "ReadResults"
          Effect   = "Allow"
          Action   = "s3:GetObject"
          Resource = "${aws_s3_bucket.results.arn}/${var.result_prefix}/*"
        },
        local.list_results_statement,
      ],
      [for statement in [
        {
          Sid      = "DecryptResults"
          Effect   = "Allow"
          Action   = "kms:Decrypt"
          Resource = var.kms_key_arn
        },
      ] : statement if var.kms_key_arn != null],
    )
  })
}
