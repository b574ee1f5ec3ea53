output "instance_id" {
  description = "The host's instance id. PCR4 is derived from it (infra/README.md says how); pin it in the node's manifest set."
  value       = aws_instance.parent.id
}

output "role_arn" {
  description = "ARN of the host's IAM role. PCR3 is derived from it (infra/README.md says how)."
  value       = aws_iam_role.parent.arn
}

output "private_ip" {
  description = "The host's private address."
  value       = aws_instance.parent.private_ip
}

output "peer_address" {
  description = "host:port peers dial: the node's `address` in the manifest (the public address when there is one)."
  value       = "${var.public_ip ? aws_instance.parent.public_ip : aws_instance.parent.private_ip}:${local.peer_port}"
}

output "security_group_id" {
  description = "The host's security group."
  value       = aws_security_group.parent.id
}
