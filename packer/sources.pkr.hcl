locals {
  timestamp  = regex_replace(timestamp(), "[- TZ:]", "")
  wheelhouse = var.wheelhouse_dir != "" ? var.wheelhouse_dir : "${path.root}/../dist/wheelhouse"
}

source "amazon-ebs" "debian12" {
  region        = var.region
  instance_type = var.instance_type
  subnet_id     = var.subnet_id
  ami_name      = "${var.ami_name_prefix}-${var.grid_version}-${local.timestamp}"

  source_ami_filter {
    filters = {
      name                = var.source_ami_name
      architecture        = "x86_64"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
    owners      = [var.source_ami_owner]
    most_recent = true
  }

  ssh_username              = "admin"
  ssh_clear_authorized_keys = true
  # The builder opens SSH to its own address only, for the bake's few minutes.
  temporary_security_group_source_public_ip = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  imds_support = "v2.0"

  encrypt_boot = true
  kms_key_id   = var.kms_key_id
  launch_block_device_mappings {
    device_name           = "/dev/xvda"
    volume_size           = var.volume_size
    volume_type           = "gp3"
    encrypted             = true
    kms_key_id            = var.kms_key_id
    delete_on_termination = true
  }

  # Terraform's AMI lookup selects by these tags (Project, then the newest).
  tags = {
    Name                   = "${var.ami_name_prefix}-${var.grid_version}"
    Project                = "grid"
    "grid:version"         = var.grid_version
    "grid:commit"          = var.git_commit
    "grid:source-ami"      = "{{ .SourceAMI }}"
    "grid:source-ami-name" = "{{ .SourceAMIName }}"
  }
  snapshot_tags = {
    Project        = "grid"
    "grid:version" = var.grid_version
    "grid:commit"  = var.git_commit
  }
  run_tags = {
    Project = "grid"
    Name    = "packer-grid-bake"
  }
}
