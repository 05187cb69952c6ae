# The grid on AWS: tasks and results queues, one fleet per role, the parameters every role reads from SSM, the
# result bucket, scaling, logs, a dashboard and alarms. Names and defaults come from the grid's own registries,
# exported to grid-parameters.json (`grid config export`) and grid-metrics.json (`grid.metrics.export()`).

provider "aws" {
  region = var.region

  default_tags {
    tags = local.tags
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  registry = jsondecode(file("${path.module}/grid-parameters.json"))
  metrics  = jsondecode(file("${path.module}/grid-metrics.json"))
  roles    = local.registry.roles
  params   = { for p in local.registry.parameters : p.ssm_name => p }
  defaults = { for key, p in local.params : key => p.ssm_value }

  env    = coalesce(var.env, local.registry.aws_env.default)
  tags   = merge(var.tags, { Project = "grid", "grid:env" = local.env })
  prefix = var.name_prefix

  tasks_queue_name   = coalesce(var.tasks_queue_name, "${local.prefix}${local.defaults["producer/tasks_queue_name"]}")
  results_queue_name = coalesce(var.results_queue_name, "${local.prefix}${local.defaults["worker/results_queue_name"]}")
  # The registry names the worker and supervisor groups; the producer and collector groups follow their pattern.
  asg_names = {
    producer   = "${local.prefix}awsgrid-with-sqs-producer-asg"
    worker     = "${local.prefix}${local.defaults["supervisor/worker_asg_name"]}"
    supervisor = "${local.prefix}${local.defaults["supervisor/supervisor_asg_name"]}"
    collector  = "${local.prefix}awsgrid-with-sqs-collector-asg"
  }
  # IAM role, instance profile, security group and launch template of each fleet: per env, <= 64 characters.
  resource_names = { for role in local.roles : role => "${local.prefix}grid-${local.env}-${role}" }
  ssm_roots      = { for role in local.roles : role => replace(replace(dirname(local.registry.ssm_path), "{env}", local.env), "{role}", role) }
  ssm_names      = { for key, p in local.params : key => "${local.ssm_roots[p.role]}/${p.name}" }

  broker_url           = "sqs://?region=${var.region}"
  result_store         = "s3://${aws_s3_bucket.results.bucket}/${var.result_prefix}"
  max_receive_count    = coalesce(var.max_receive_count, tonumber(local.defaults["worker/max_receive_count"]))
  backlog_per_instance = coalesce(var.backlog_per_instance, tonumber(local.defaults["supervisor/backlog_per_instance"]))

  fleet_defaults = {
    producer   = { instance_types = ["c7i.large", "c6i.large"], min_size = 0, max_size = 1 }
    worker     = { instance_types = ["c7i.large", "c6i.large", "c6a.large", "c5.large"], min_size = 0, max_size = tonumber(local.defaults["supervisor/max_workers"]) }
    supervisor = { instance_types = ["t3.micro"], min_size = 1, max_size = 1 }
    collector  = { instance_types = ["t3.small"], min_size = 1, max_size = 1 }
  }
  fleet_settings = {
    for role in local.roles : role => merge(
      { on_demand_base_capacity = 0, on_demand_percentage_above_base_capacity = 100, spot_allocation_strategy = "price-capacity-optimized", root_volume_size = 8 },
      local.fleet_defaults[role],
      { for k, v in try(var.fleets[role], {}) : k => v if v != null },
    )
  }

  # Parameters whose value is what Terraform made or set up, and the variable that sets each; `parameters` may not
  # override them.
  managed_by_name = {
    broker_url           = { value = local.broker_url, variable = "region (the broker URL is sqs://?region=REGION)" }
    tasks_queue_name     = { value = local.tasks_queue_name, variable = "tasks_queue_name" }
    results_queue_name   = { value = local.results_queue_name, variable = "results_queue_name" }
    max_receive_count    = { value = tostring(local.max_receive_count), variable = "max_receive_count" }
    worker_asg_name      = { value = local.asg_names.worker, variable = "name_prefix" }
    supervisor_asg_name  = { value = local.asg_names.supervisor, variable = "name_prefix" }
    scale_mode           = { value = var.scale_mode, variable = "scale_mode" }
    backlog_per_instance = { value = tostring(local.backlog_per_instance), variable = "backlog_per_instance" }
    min_workers          = { value = tostring(local.fleet_settings.worker.min_size), variable = "fleets.worker.min_size" }
    max_workers          = { value = tostring(local.fleet_settings.worker.max_size), variable = "fleets.worker.max_size" }
    result_store         = { value = local.result_store, variable = "result_bucket_name and result_prefix" }
  }
  managed           = { for key, p in local.params : key => local.managed_by_name[p.name].value if contains(keys(local.managed_by_name), p.name) }
  managed_variables = { for key, p in local.params : key => local.managed_by_name[p.name].variable if contains(keys(local.managed_by_name), p.name) }
  values            = merge(local.defaults, var.parameters, local.managed)
}

# ---- the image

locals {
  ami_tags = { Project = "grid" } # what packer build tags the image with (packer/sources.pkr.hcl)
}

data "aws_ami" "grid" {
  owners      = var.ami_id == null ? ["self"] : null
  most_recent = true

  dynamic "filter" {
    for_each = var.ami_id == null ? { for k, v in local.ami_tags : "tag:${k}" => v } : { "image-id" = var.ami_id }
    content {
      name   = filter.key
      values = [filter.value]
    }
  }
}

# ---- queues

module "tasks_queue" {
  source = "./modules/queue"

  name                       = local.tasks_queue_name
  visibility_timeout_seconds = tonumber(local.values["worker/visibility_timeout"])
  max_receive_count          = local.max_receive_count
  kms_key_arn                = var.kms_key_arn
}

module "results_queue" {
  source = "./modules/queue"

  name                       = local.results_queue_name
  visibility_timeout_seconds = tonumber(local.values["collector/visibility_timeout"])
  max_receive_count          = local.max_receive_count
  kms_key_arn                = var.kms_key_arn
}

# ---- fleets

module "fleet" {
  source   = "./modules/fleet"
  for_each = local.fleet_settings

  role             = each.key
  name             = local.asg_names[each.key]
  resource_name    = local.resource_names[each.key]
  aws_env          = local.env
  region           = var.region
  broker_url       = local.broker_url
  result_store     = local.result_store
  extra_env        = var.instance_env
  ami_id           = data.aws_ami.grid.id
  root_device_name = data.aws_ami.grid.root_device_name
  kms_key_arn      = var.kms_key_arn
  policy_json      = jsonencode({ Version = "2012-10-17", Statement = local.policy_statements[each.key] })

  instance_types                           = each.value.instance_types
  min_size                                 = each.value.min_size
  max_size                                 = each.value.max_size
  on_demand_base_capacity                  = each.value.on_demand_base_capacity
  on_demand_percentage_above_base_capacity = each.value.on_demand_percentage_above_base_capacity
  spot_allocation_strategy                 = each.value.spot_allocation_strategy
  root_volume_size                         = each.value.root_volume_size
  termination_hook_timeout                 = each.key == "worker" ? var.worker_drain_seconds : 0

  subnet_ids                  = var.subnet_ids
  vpc_id                      = var.vpc_id
  associate_public_ip_address = var.associate_public_ip_address
  egress_cidr_blocks          = var.egress_cidr_blocks
  detailed_monitoring         = var.detailed_monitoring
  tags                        = local.tags

  depends_on = [aws_ssm_parameter.this, aws_cloudwatch_log_group.this]
}

# ---- parameters

resource "aws_ssm_parameter" "this" {
  for_each = local.values

  name           = local.ssm_names[each.key]
  description    = substr(local.params[each.key].help, 0, 1024)
  type           = var.kms_key_arn == null ? "String" : "SecureString"
  key_id         = var.kms_key_arn
  value          = var.kms_key_arn == null ? null : each.value
  insecure_value = var.kms_key_arn == null ? each.value : null
}
