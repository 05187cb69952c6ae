# Plan-level rules of one fleet (modules/fleet), on a mocked AWS provider: no credentials, no network.

mock_provider "aws" {
  mock_resource "aws_iam_instance_profile" {
    defaults = {
      arn = "arn:aws:iam::123456789012:instance-profile/grid-dev-worker"
    }
  }
}

variables {
  role                     = "worker"
  name                     = "awsgrid-with-sqs-worker-asg"
  resource_name            = "grid-dev-worker"
  aws_env                  = "dev"
  region                   = "eu-west-1"
  broker_url               = "sqs://?region=eu-west-1"
  result_store             = "s3://bucket/results"
  ami_id                   = "ami-0123456789abcdef0"
  root_device_name         = "/dev/xvda"
  instance_types           = ["c7i.large", "c6i.large"]
  min_size                 = 0
  max_size                 = 4
  subnet_ids               = ["subnet-0123456789abcdef0"]
  vpc_id                   = "vpc-0123456789abcdef0"
  egress_cidr_blocks       = ["0.0.0.0/0"]
  policy_json              = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
  termination_hook_timeout = 300
}

run "secure_by_default" {
  command = apply

  module {
    source = "./modules/fleet"
  }

  assert {
    condition     = aws_launch_template.this.metadata_options[0].http_tokens == "required" && aws_launch_template.this.metadata_options[0].http_put_response_hop_limit == 1
    error_message = "IMDSv2 must be required, with a hop limit of 1."
  }
  assert {
    condition     = alltrue([for b in aws_launch_template.this.block_device_mappings : b.ebs[0].encrypted == "true" && b.ebs[0].volume_type == "gp3"])
    error_message = "Every volume must be encrypted gp3."
  }
  assert {
    condition     = alltrue([for n in aws_launch_template.this.network_interfaces : n.associate_public_ip_address == "false"])
    error_message = "No public IP by default."
  }
  assert {
    condition     = aws_launch_template.this.key_name == null
    error_message = "No SSH key pair."
  }
  assert {
    condition     = length(aws_security_group.this.ingress) == 0
    error_message = "The security group must have no inbound rule."
  }
  assert {
    condition     = alltrue([for r in aws_vpc_security_group_egress_rule.https : r.ip_protocol == "tcp" && r.from_port == 443 && r.to_port == 443])
    error_message = "Outbound traffic is HTTPS only."
  }
  assert {
    condition     = strcontains(base64decode(aws_launch_template.this.user_data), "systemctl enable --now 'grid@worker.service'")
    error_message = "User data must enable the role's unit."
  }
  assert {
    condition     = strcontains(base64decode(aws_launch_template.this.user_data), "GRID_BROKER_URL=sqs://?region=eu-west-1\n")
    error_message = "User data must write the broker URL to /etc/grid/grid.env."
  }
  assert {
    condition     = length(aws_autoscaling_lifecycle_hook.termination) == 1 && aws_autoscaling_lifecycle_hook.termination[0].lifecycle_transition == "autoscaling:EC2_INSTANCE_TERMINATING"
    error_message = "A drain time gives the group a termination lifecycle hook."
  }
  assert {
    condition     = [for o in aws_autoscaling_group.this.mixed_instances_policy[0].launch_template[0].override : o.instance_type] == ["c7i.large", "c6i.large"]
    error_message = "The group launches the instance types given, in order."
  }
  assert {
    condition     = aws_autoscaling_group.this.capacity_rebalance == false
    error_message = "Capacity rebalancing is for spot only."
  }
}

run "spot_turns_on_capacity_rebalancing" {
  command = plan

  module {
    source = "./modules/fleet"
  }

  variables {
    on_demand_base_capacity                  = 1
    on_demand_percentage_above_base_capacity = 0
    termination_hook_timeout                 = 0
  }

  assert {
    condition     = aws_autoscaling_group.this.capacity_rebalance == true
    error_message = "A fleet with spot must rebalance capacity."
  }
  assert {
    condition     = aws_autoscaling_group.this.mixed_instances_policy[0].instances_distribution[0].on_demand_base_capacity == 1
    error_message = "The on-demand base is kept."
  }
  assert {
    condition     = length(aws_autoscaling_lifecycle_hook.termination) == 0
    error_message = "No drain time, no hook."
  }
}

run "rejects_an_unknown_role" {
  command = plan

  module {
    source = "./modules/fleet"
  }

  variables {
    role = "janitor"
  }

  expect_failures = [var.role]
}

run "rejects_a_long_resource_name" {
  command = plan

  module {
    source = "./modules/fleet"
  }

  variables {
    resource_name = "a-name-far-too-long-for-an-iam-role-which-allows-sixty-four-characters"
  }

  expect_failures = [var.resource_name]
}
