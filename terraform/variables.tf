# ---- where

variable "region" {
  description = "AWS region of the grid (e.g. eu-west-1)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+$", var.region))
    error_message = "region = \"${var.region}\": must be an AWS region name such as eu-west-1."
  }
}

variable "env" {
  description = "The grid's AWS_ENV: SSM parameters live under /{env}/AWSGridWithSQS/{role}/. Null: the registry's default (dev)."
  type        = string
  default     = null

  validation {
    condition     = var.env == null || can(regex("^(?:${local.registry.aws_env.pattern})$", var.env))
    error_message = "env = \"${coalesce(var.env, "null")}\": must be 1..15 letters, digits, '_' or '-' (it names the SSM path /{env}/AWSGridWithSQS/...)."
  }
}

variable "name_prefix" {
  description = "Prefix of every name (queues, groups, roles, bucket), e.g. \"prod-\", so that several envs share an account and region. Empty: the registry's names (grid_tasks_queue, awsgrid-with-sqs-worker-asg, ...)."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[a-z0-9-]{0,20}$", var.name_prefix))
    error_message = "name_prefix = \"${var.name_prefix}\": must be 0..20 lowercase letters, digits or '-' (it goes into S3 bucket and SQS queue names)."
  }
}

variable "vpc_id" {
  description = "VPC of the instances."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]{8,17}$", var.vpc_id))
    error_message = "vpc_id = \"${var.vpc_id}\": must be a VPC ID such as vpc-0123456789abcdef0."
  }
}

variable "subnet_ids" {
  description = "Subnets of the instances (private subnets with a NAT gateway or VPC endpoints; several AZs for spot)."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0 && alltrue([for s in var.subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", s))])
    error_message = "subnet_ids = ${jsonencode(var.subnet_ids)}: give at least one subnet ID such as subnet-0123456789abcdef0."
  }
}

variable "associate_public_ip_address" {
  description = "Give instances a public IP: only for public subnets without a NAT gateway or VPC endpoints (no inbound rule is opened either way)."
  type        = bool
  default     = false
}

variable "egress_cidr_blocks" {
  description = "Where instances may open HTTPS connections: the AWS APIs (SQS, SSM, CloudWatch, S3, Auto Scaling). Narrow it to your VPC's CIDR when the VPC has interface endpoints for them."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = alltrue([for c in var.egress_cidr_blocks : can(cidrhost(c, 0))])
    error_message = "egress_cidr_blocks = ${jsonencode(var.egress_cidr_blocks)}: each must be an IPv4 CIDR block such as 10.0.0.0/16."
  }
}

# ---- what runs

variable "ami_id" {
  description = "AMI of the instances. Null: the newest image of this account tagged Project = grid (what packer build makes)."
  type        = string
  default     = null

  validation {
    condition     = var.ami_id == null || can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))
    error_message = "ami_id = \"${coalesce(var.ami_id, "null")}\": must be an AMI ID such as ami-0123456789abcdef0, or null to find the grid's image by its tags."
  }
}

variable "fleets" {
  description = <<-EOT
    Per role (producer, worker, supervisor, collector), what to change of its fleet's defaults: instance_types,
    min_size, max_size, on_demand_base_capacity, on_demand_percentage_above_base_capacity (100: no spot),
    spot_allocation_strategy, root_volume_size. Defaults: worker 0..4 compute instances on demand; supervisor and
    collector one small instance each; producer none (it makes synthetic load: set min_size = max_size = 1).
  EOT
  type = map(object({
    instance_types                           = optional(list(string))
    min_size                                 = optional(number)
    max_size                                 = optional(number)
    on_demand_base_capacity                  = optional(number)
    on_demand_percentage_above_base_capacity = optional(number)
    spot_allocation_strategy                 = optional(string)
    root_volume_size                         = optional(number)
  }))
  default = {}

  validation {
    condition     = alltrue([for role in keys(var.fleets) : contains(local.registry.roles, role)])
    error_message = "fleets has keys ${jsonencode(keys(var.fleets))}: each must be one of ${join(", ", local.registry.roles)}."
  }
  validation {
    condition = alltrue([for f in values(var.fleets) : alltrue([
      for n in [f.min_size, f.max_size, f.on_demand_base_capacity, f.root_volume_size] : n == null || try(n >= 0 && floor(n) == n, false)
    ])])
    error_message = "fleets: min_size, max_size, on_demand_base_capacity and root_volume_size must be whole numbers >= 0."
  }
  validation {
    condition     = alltrue([for role, f in var.fleets : try(coalesce(f.min_size, local.fleet_defaults[role].min_size) <= coalesce(f.max_size, local.fleet_defaults[role].max_size), true)])
    error_message = "fleets: min_size must be <= max_size (${join(", ", [for role, f in var.fleets : "${role} ${try(coalesce(f.min_size, local.fleet_defaults[role].min_size), "?")}..${try(coalesce(f.max_size, local.fleet_defaults[role].max_size), "?")}"])})."
  }
  validation {
    condition     = alltrue([for f in values(var.fleets) : f.on_demand_percentage_above_base_capacity == null || try(f.on_demand_percentage_above_base_capacity >= 0 && f.on_demand_percentage_above_base_capacity <= 100, false)])
    error_message = "fleets: on_demand_percentage_above_base_capacity must be in 0..100 (100: no spot; 0: all spot above the base)."
  }
  validation {
    condition     = alltrue([for f in values(var.fleets) : f.spot_allocation_strategy == null || contains(["price-capacity-optimized", "capacity-optimized", "capacity-optimized-prioritized", "lowest-price"], coalesce(f.spot_allocation_strategy, "-"))])
    error_message = "fleets: spot_allocation_strategy must be one of price-capacity-optimized, capacity-optimized, capacity-optimized-prioritized, lowest-price."
  }
}

variable "instance_env" {
  description = "More lines of every instance's /etc/grid/grid.env, NAME => value (e.g. AWS_ENDPOINT_URL for an SQS-compatible endpoint)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.instance_env) : can(regex("^[A-Za-z_][A-Za-z0-9_]*$", k))])
    error_message = "instance_env has keys ${jsonencode(keys(var.instance_env))}: each must be an environment variable name (letters, digits, '_', not starting with a digit)."
  }
  validation {
    condition     = alltrue([for v in values(var.instance_env) : !can(regex("[\n\r]", v))])
    error_message = "instance_env: values must be single lines (they are lines of a systemd EnvironmentFile)."
  }
}

# ---- the grid's parameters

variable "parameters" {
  description = <<-EOT
    Values of grid parameters in SSM, "role/name" => value as text, e.g. { "worker/batch_size" = "5" }; every
    other parameter gets the registry's default (grid-parameters.json, from `grid config export`). Names of things
    Terraform makes (queues, groups, broker URL, result store) and the scaling settings come from their own variables.
  EOT
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for key in keys(var.parameters) : contains(keys(local.params), key)])
    error_message = "parameters: ${join(", ", [for key in keys(var.parameters) : key if !contains(keys(local.params), key)])}: not grid parameters (`grid config export` lists them as role/name, e.g. worker/batch_size)."
  }
  validation {
    condition     = alltrue([for key in keys(var.parameters) : !contains(keys(local.managed_variables), key)])
    error_message = "parameters: ${join("; ", [for key in keys(var.parameters) : "${key} is set by Terraform from variable ${local.managed_variables[key]}" if contains(keys(local.managed_variables), key)])}."
  }
  validation {
    # The checks appear twice: a validation may not read a local value made from the variable it validates.
    condition = alltrue([for key, value in var.parameters : !contains(keys(local.params), key) || try(alltrue([
      value != "", # SSM holds no empty value
      local.params[key].type != "int" || can(regex("^[+-]?[0-9]{1,18}$", trimspace(value))),
      local.params[key].type != "float" || can(tonumber(trimspace(value))),
      local.params[key].min == null || try(tonumber(value) >= local.params[key].min, false),
      local.params[key].max == null || try(tonumber(value) <= local.params[key].max, false),
      local.params[key].choices == null || try(contains([for c in local.params[key].choices : lower(c)], lower(trimspace(value))), false),
      local.params[key].pattern == null || can(regex("^(?:${local.params[key].pattern})$", value)),
    ]), false)])
    error_message = "parameters: ${join("; ", [for key, value in var.parameters : "${key} = ${jsonencode(value)}: must be ${local.params[key].allowed}" if contains(keys(local.params), key) && !contains(keys(local.managed_variables), key) && !try(alltrue([value != "", local.params[key].type != "int" || can(regex("^[+-]?[0-9]{1,18}$", trimspace(value))), local.params[key].type != "float" || can(tonumber(trimspace(value))), local.params[key].min == null || try(tonumber(value) >= local.params[key].min, false), local.params[key].max == null || try(tonumber(value) <= local.params[key].max, false), local.params[key].choices == null || try(contains([for c in local.params[key].choices : lower(c)], lower(trimspace(value))), false), local.params[key].pattern == null || can(regex("^(?:${local.params[key].pattern})$", value)), ]), false)])}."
  }
}

variable "tasks_queue_name" {
  description = "Name of the tasks queue. Null: name_prefix + the registry's default (grid_tasks_queue)."
  type        = string
  default     = null

  validation {
    condition     = var.tasks_queue_name == null || can(regex("^[A-Za-z0-9_-]{1,76}$", var.tasks_queue_name))
    error_message = "tasks_queue_name = \"${coalesce(var.tasks_queue_name, "null")}\": must be 1..76 letters, digits, '-' or '_' (an SQS queue name, leaving room for the dead-letter queue's '-dlq')."
  }
}

variable "results_queue_name" {
  description = "Name of the results queue. Null: name_prefix + the registry's default (grid_results_queue)."
  type        = string
  default     = null

  validation {
    condition     = var.results_queue_name == null || can(regex("^[A-Za-z0-9_-]{1,76}$", var.results_queue_name))
    error_message = "results_queue_name = \"${coalesce(var.results_queue_name, "null")}\": must be 1..76 letters, digits, '-' or '_' (an SQS queue name, leaving room for the dead-letter queue's '-dlq')."
  }
}

variable "max_receive_count" {
  description = "Receives before a task or result goes to its dead-letter queue. Null: the registry's default (5)."
  type        = number
  default     = null

  validation {
    condition     = var.max_receive_count == null || try(var.max_receive_count >= 1 && var.max_receive_count <= 1000 && floor(var.max_receive_count) == var.max_receive_count, false)
    error_message = "max_receive_count = ${coalesce(var.max_receive_count, -1)}: must be a whole number in 1..1000."
  }
}

# ---- scaling

variable "scale_mode" {
  description = "Who sizes the worker group: target (a target tracking policy on the supervisor's backlog_per_instance metric) or direct (the supervisor sets the desired capacity). Written to the supervisor's scale_mode."
  type        = string
  default     = "target"

  validation {
    condition     = contains(["target", "direct"], var.scale_mode)
    error_message = "scale_mode = \"${var.scale_mode}\": must be target or direct."
  }
}

variable "backlog_per_instance" {
  description = "Scaling target: tasks waiting or in work per worker. Null: the registry's default (5000). Written to the supervisor's backlog_per_instance."
  type        = number
  default     = null

  validation {
    condition     = var.backlog_per_instance == null || try(var.backlog_per_instance >= 1 && var.backlog_per_instance <= 10000000 && floor(var.backlog_per_instance) == var.backlog_per_instance, false)
    error_message = "backlog_per_instance = ${coalesce(var.backlog_per_instance, -1)}: must be a whole number in 1..10000000."
  }
}

variable "worker_drain_seconds" {
  description = "Seconds a worker instance being scaled in is held (termination lifecycle hook) before it is terminated and its worker stopped with SIGTERM (0: no hook). An instance may end the wait early (autoscaling:CompleteLifecycleAction on its own group)."
  type        = number
  default     = 300

  validation {
    condition     = var.worker_drain_seconds == 0 || (var.worker_drain_seconds >= 30 && var.worker_drain_seconds <= 7200)
    error_message = "worker_drain_seconds = ${var.worker_drain_seconds}: must be 0 (no hook) or 30..7200 (a lifecycle hook's heartbeat timeout)."
  }
}

# ---- storage, encryption, monitoring

variable "result_bucket_name" {
  description = "S3 bucket of the result store. Null: <name_prefix>grid-<env>-results-<account>-<region>."
  type        = string
  default     = null

  validation {
    condition     = var.result_bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.result_bucket_name))
    error_message = "result_bucket_name = \"${coalesce(var.result_bucket_name, "null")}\": must be 3..63 lowercase letters, digits, '.' or '-' (an S3 bucket name)."
  }
}

variable "result_prefix" {
  description = "Key prefix of the results in the bucket: the collector's result_store is s3://<bucket>/<prefix>."
  type        = string
  default     = "results"

  validation {
    condition     = can(regex("^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*$", var.result_prefix))
    error_message = "result_prefix = \"${var.result_prefix}\": must be one or more '/'-separated parts of letters, digits or !_.*'()- (no leading or trailing '/')."
  }
}

variable "result_noncurrent_days" {
  description = "Days S3 keeps an overwritten or deleted result object's old version."
  type        = number
  default     = 30

  validation {
    condition     = var.result_noncurrent_days >= 1
    error_message = "result_noncurrent_days = ${var.result_noncurrent_days}: must be >= 1."
  }
}

variable "force_destroy" {
  description = "Let terraform destroy delete the result bucket with the results in it."
  type        = bool
  default     = false
}

variable "kms_key_arn" {
  description = "A customer managed KMS key for the queues, SSM parameters (then SecureString), logs, result bucket and volumes. Null: AWS-managed encryption (SSE-SQS, SSE-S3, the default EBS key). Its key policy must let CloudWatch Logs use it."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]{36}$", var.kms_key_arn))
    error_message = "kms_key_arn = \"${coalesce(var.kms_key_arn, "null")}\": must be a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/UUID), not an alias."
  }
}

variable "log_retention_days" {
  description = "Days CloudWatch Logs keeps the roles' logs."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days = ${var.log_retention_days}: must be one of CloudWatch Logs' retention periods: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

variable "oldest_task_alarm_seconds" {
  description = "Alarm when the oldest task has waited this long in the tasks queue."
  type        = number
  default     = 3600

  validation {
    condition     = var.oldest_task_alarm_seconds >= 60
    error_message = "oldest_task_alarm_seconds = ${var.oldest_task_alarm_seconds}: must be >= 60."
  }
}

variable "alarm_actions" {
  description = "ARNs notified when an alarm fires or clears (e.g. an SNS topic)."
  type        = list(string)
  default     = []
}

variable "detailed_monitoring" {
  description = "EC2 detailed (1-minute) monitoring: the dashboard's worker CPU per minute."
  type        = bool
  default     = true
}

variable "session_manager" {
  description = "Let SSM Session Manager reach the instances (the only way in: they have no SSH and no inbound rule)."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags of every resource (Project = grid and grid:env are added)."
  type        = map(string)
  default     = {}
}
