variable "role" {
  description = "The grid role this fleet runs: producer, worker, supervisor or collector."
  type        = string

  validation {
    condition     = contains(["producer", "worker", "supervisor", "collector"], var.role)
    error_message = "role = \"${var.role}\": must be one of producer, worker, supervisor, collector."
  }
}

variable "name" {
  description = "Name of the Auto Scaling group (the grid's worker_asg_name / supervisor_asg_name for those roles)."
  type        = string
}

variable "resource_name" {
  description = "Name of the fleet's IAM role, instance profile, security group and launch template (<= 64 characters)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_+=,.@-]{1,64}$", var.resource_name))
    error_message = "resource_name = \"${var.resource_name}\": must be 1..64 letters, digits or _+=,.@- (an IAM role name)."
  }
}

variable "aws_env" {
  description = "The grid's AWS_ENV: the SSM path /{aws_env}/AWSGridWithSQS/{role}/ the role reads."
  type        = string
}

variable "region" {
  description = "AWS region the instances run in (AWS_REGION of the grid's environment file)."
  type        = string
}

variable "broker_url" {
  description = "GRID_BROKER_URL of the instances."
  type        = string
}

variable "result_store" {
  description = "GRID_RESULT_STORE of the instances."
  type        = string
}

variable "extra_env" {
  description = "More lines of /etc/grid/grid.env, NAME => value (e.g. AWS_ENDPOINT_URL)."
  type        = map(string)
  default     = {}
}

variable "ami_id" {
  description = "AMI of the instances: the grid's baked image."
  type        = string
}

variable "root_device_name" {
  description = "Root device of the AMI (e.g. /dev/xvda), whose volume this fleet sets to encrypted gp3."
  type        = string
}

variable "root_volume_size" {
  description = "Size of the encrypted gp3 root volume, GiB."
  type        = number
  default     = 8
}

variable "kms_key_arn" {
  description = "Customer managed KMS key of the root volume; null uses the account's default EBS key."
  type        = string
  default     = null
}

variable "instance_types" {
  description = "Instance types the group may launch, in order of preference (one is enough)."
  type        = list(string)

  validation {
    condition     = length(var.instance_types) >= 1 && length(var.instance_types) <= 20
    error_message = "instance_types: give 1..20 instance types."
  }
}

variable "on_demand_base_capacity" {
  description = "Instances that are always on-demand, before any spot."
  type        = number
  default     = 0
}

variable "on_demand_percentage_above_base_capacity" {
  description = "Percent of the instances above the base that are on-demand (100: no spot; 0: all spot)."
  type        = number
  default     = 100
}

variable "spot_allocation_strategy" {
  description = "How spot instances are chosen among the pools of instance_types."
  type        = string
  default     = "price-capacity-optimized"
}

variable "min_size" {
  description = "Fewest instances of the group."
  type        = number
}

variable "max_size" {
  description = "Most instances of the group."
  type        = number
}

variable "subnet_ids" {
  description = "Subnets the instances run in."
  type        = list(string)
}

variable "vpc_id" {
  description = "VPC of the subnets (for the security group)."
  type        = string
}

variable "associate_public_ip_address" {
  description = "Give instances a public IP (only for subnets without a NAT gateway or VPC endpoints)."
  type        = bool
  default     = false
}

variable "egress_cidr_blocks" {
  description = "Where instances may open HTTPS connections (the AWS APIs: SQS, SSM, CloudWatch, S3, Auto Scaling)."
  type        = list(string)
}

variable "policy_json" {
  description = "The IAM policy of the fleet's role: what its role and the CloudWatch agent may do."
  type        = string
}

variable "termination_hook_timeout" {
  description = "Seconds a terminating instance is held in Terminating:Wait (0: no termination lifecycle hook)."
  type        = number
  default     = 0
}

variable "detailed_monitoring" {
  description = "EC2 detailed (1-minute) monitoring of the instances."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags of the fleet's resources, also propagated to its instances and volumes."
  type        = map(string)
  default     = {}
}
