# One grid fleet: an instance role, a security group with no inbound rule, a launch template of the baked AMI whose
# user data starts the one role, and the Auto Scaling group that runs it.

locals {
  tags = merge(var.tags, { "grid:role" = var.role })
}

resource "aws_iam_role" "this" {
  name        = var.resource_name
  description = "grid ${var.role} instances (${var.aws_env})"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ec2.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
  tags = local.tags
}

resource "aws_iam_role_policy" "this" {
  name   = "grid-${var.role}"
  role   = aws_iam_role.this.id
  policy = var.policy_json
}

resource "aws_iam_instance_profile" "this" {
  name = var.resource_name
  role = aws_iam_role.this.name
  tags = local.tags
}

# Instances are reached through SSM Session Manager, never SSH: no inbound rule at all.
resource "aws_security_group" "this" {
  name        = var.resource_name
  description = "grid ${var.role} instances: no inbound traffic, HTTPS out to the AWS APIs"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = var.resource_name })
}

resource "aws_vpc_security_group_egress_rule" "https" {
  for_each = toset(var.egress_cidr_blocks)

  security_group_id = aws_security_group.this.id
  description       = "HTTPS to the AWS APIs"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  tags              = local.tags
}

resource "aws_launch_template" "this" {
  name                   = var.resource_name
  description            = "grid ${var.role} (${var.aws_env})"
  image_id               = var.ami_id
  update_default_version = true
  user_data = base64encode(templatefile("${path.module}/user_data.sh.tftpl", {
    role         = var.role
    aws_env      = var.aws_env
    region       = var.region
    broker_url   = var.broker_url
    result_store = var.result_store
    extra_env    = var.extra_env
  }))

  iam_instance_profile {
    arn = aws_iam_instance_profile.this.arn
  }

  network_interfaces {
    associate_public_ip_address = var.associate_public_ip_address
    security_groups             = [aws_security_group.this.id]
    delete_on_termination       = true
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  block_device_mappings {
    device_name = var.root_device_name
    ebs {
      volume_type           = "gp3"
      volume_size           = var.root_volume_size
      encrypted             = true
      kms_key_id            = var.kms_key_arn
      delete_on_termination = true
    }
  }

  monitoring {
    enabled = var.detailed_monitoring
  }

  dynamic "tag_specifications" {
    for_each = ["instance", "volume"]
    content {
      resource_type = tag_specifications.value
      tags          = merge(local.tags, { Name = var.name })
    }
  }

  tags = local.tags
}

resource "aws_autoscaling_group" "this" {
  name                      = var.name
  min_size                  = var.min_size
  max_size                  = var.max_size
  vpc_zone_identifier       = var.subnet_ids
  health_check_type         = "EC2"
  health_check_grace_period = 120
  capacity_rebalance        = var.on_demand_percentage_above_base_capacity < 100
  metrics_granularity       = "1Minute"
  enabled_metrics           = ["GroupDesiredCapacity", "GroupInServiceInstances", "GroupPendingInstances", "GroupTerminatingInstances", "GroupTotalInstances"]

  mixed_instances_policy {
    instances_distribution {
      on_demand_base_capacity                  = var.on_demand_base_capacity
      on_demand_percentage_above_base_capacity = var.on_demand_percentage_above_base_capacity
      spot_allocation_strategy                 = var.spot_allocation_strategy
    }

    launch_template {
      launch_template_specification {
        launch_template_id = aws_launch_template.this.id
        version            = aws_launch_template.this.latest_version
      }

      dynamic "override" {
        for_each = var.instance_types
        content {
          instance_type = override.value
        }
      }
    }
  }

  dynamic "tag" {
    for_each = merge(local.tags, { Name = var.name })
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  lifecycle {
    # The desired capacity belongs to whoever scales the group: the supervisor or the target tracking policy.
    ignore_changes = [desired_capacity]
  }

  depends_on = [aws_iam_role_policy.this]
}

resource "aws_autoscaling_lifecycle_hook" "termination" {
  count = var.termination_hook_timeout > 0 ? 1 : 0

  name                   = "${var.resource_name}-drain"
  autoscaling_group_name = aws_autoscaling_group.this.name
  lifecycle_transition   = "autoscaling:EC2_INSTANCE_TERMINATING"
  heartbeat_timeout      = var.termination_hook_timeout
  default_result         = "CONTINUE"
}
