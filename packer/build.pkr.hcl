build {
  sources = ["source.amazon-ebs.debian12"]

  # Debian's images run cloud-init at first boot; apt is busy until it is done.
  provisioner "shell" {
    inline = ["cloud-init status --wait", "mkdir -p /tmp/grid-wheelhouse"]
  }

  # The wheel this checkout built, never a git clone: the image knows which code it holds.
  provisioner "file" {
    source      = "${local.wheelhouse}/"
    destination = "/tmp/grid-wheelhouse/"
  }

  # The same roles molecule converges; what differs from a lab host is variables only.
  provisioner "ansible" {
    playbook_file = "${path.root}/../playbooks/bake.yml"
    user          = "admin"
    use_proxy     = false
    extra_arguments = [
      "--become",
      "--extra-vars", "grid_wheelhouse_dir=/tmp/grid-wheelhouse grid_wheelhouse_src='' grid_version=${var.grid_version}",
    ]
    ansible_env_vars = [
      "ANSIBLE_ROLES_PATH=${path.root}/../roles",
      "ANSIBLE_HOST_KEY_CHECKING=False",
    ]
  }

  provisioner "shell" {
    inline = ["sudo rm -rf /tmp/grid-wheelhouse"]
  }

  post-processor "manifest" {
    output     = "${path.root}/manifest.json"
    strip_path = true
    custom_data = {
      grid_version = var.grid_version
      git_commit   = var.git_commit
    }
  }
}
