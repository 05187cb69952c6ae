output "autoscaling_group_name" {
  description = "Name of the Auto Scaling group."
  value       = aws_autoscaling_group.this.name
}

output "autoscaling_group_arn" {
  description = "ARN of the Auto Scaling group."
  value       = aws_autoscaling_group.this.arn
}

output "launch_template_id" {
  description = "ID of the launch template."
  value       = aws_launch_template.this.id
}

output "launch_template_version" {
  description = "Latest version of the launch template (the one the group launches)."
  value       = aws_launch_template.this.latest_version
}

output "iam_role_arn" {
  description = "ARN of the instances' IAM role."
  value       = aws_iam_role.this.arn
}

output "iam_role_name" {
  description = "Name of the instances' IAM role."
  value       = aws_iam_role.this.name
}

output "security_group_id" {
  description = "ID of the instances' security group."
  value       = aws_security_group.this.id
}

output "policy_json" {
  description = "The IAM policy of the instances' role, as attached."
  value       = aws_iam_role_policy.this.policy
}
