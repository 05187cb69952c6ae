variable "region" {
  type        = string
  description = "AWS region the AMI is built in (and registered in)."
  default     = "us-east-1"
}

variable "grid_version" {
  type        = string
  description = "Version of the grid wheel in wheelhouse_dir (`make wheel` prints it); recorded in the AMI's tags."
  validation {
    condition     = can(regex("^[0-9]+[.][0-9]+[.][0-9]+[a-zA-Z0-9.+-]*$", var.grid_version))
    error_message = "The grid_version must be a PEP 440 version such as 0.1.0, as `make wheel` prints it."
  }
}

variable "git_commit" {
  type        = string
  description = "The commit the wheel was built from (git rev-parse HEAD); recorded in the AMI's tags."
  validation {
    condition     = can(regex("^[0-9a-f]{7,40}$", var.git_commit))
    error_message = "The git_commit must be a hexadecimal git commit id (7 to 40 characters)."
  }
}

variable "wheelhouse_dir" {
  type        = string
  description = "Folder of the grid wheel and its dependencies' wheels, uploaded as is; empty: the one `make wheel` builds."
  default     = ""
}

variable "instance_type" {
  type        = string
  description = "Instance type of the build instance."
  default     = "c6i.large"
}

variable "source_ami_owner" {
  type        = string
  description = "Owner of the base image: Debian's account for its official images."
  default     = "136693071363"
}

variable "source_ami_name" {
  type        = string
  description = "Name filter of the base image: the latest Debian 12 (bookworm) for amd64."
  default     = "debian-12-amd64-*"
}

variable "ami_name_prefix" {
  type        = string
  description = "Start of the AMI's name; the grid version and a timestamp follow."
  default     = "grid"
}

variable "kms_key_id" {
  type        = string
  description = "KMS key that encrypts the AMI's volume; empty uses the account's default EBS key."
  default     = ""
}

variable "subnet_id" {
  type        = string
  description = "Subnet of the build instance; empty lets Packer use the default VPC."
  default     = ""
}

variable "volume_size" {
  type        = number
  description = "Root volume size, GiB."
  default     = 8
}
