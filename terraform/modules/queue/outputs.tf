output "name" {
  description = "Name of the queue."
  value       = aws_sqs_queue.this.name
}

output "arn" {
  description = "ARN of the queue."
  value       = aws_sqs_queue.this.arn
}

output "url" {
  description = "URL of the queue."
  value       = aws_sqs_queue.this.id
}

output "dlq_name" {
  description = "Name of the dead-letter queue."
  value       = aws_sqs_queue.dlq.name
}

output "dlq_arn" {
  description = "ARN of the dead-letter queue."
  value       = aws_sqs_queue.dlq.arn
}

output "dlq_url" {
  description = "URL of the dead-letter queue."
  value       = aws_sqs_queue.dlq.id
}
