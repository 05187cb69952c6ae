# A queue and its dead-letter queue as one unit (terraform-aws-sqs): encrypted at rest, TLS only, the redrive policy
# its own resource so that both queues are created at once.

locals {
  sse_sqs = var.kms_key_arn == null
}

resource "aws_sqs_queue" "this" {
  name                              = var.name
  visibility_timeout_seconds        = var.visibility_timeout_seconds
  message_retention_seconds         = var.message_retention_seconds
  sqs_managed_sse_enabled           = local.sse_sqs ? true : null
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = local.sse_sqs ? null : 300
  tags                              = var.tags
}

resource "aws_sqs_queue" "dlq" {
  name                              = "${var.name}${var.dlq_suffix}"
  message_retention_seconds         = var.dlq_message_retention_seconds
  sqs_managed_sse_enabled           = local.sse_sqs ? true : null
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = local.sse_sqs ? null : 300
  tags                              = var.tags
}

resource "aws_sqs_queue_redrive_policy" "this" {
  queue_url = aws_sqs_queue.this.id
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
}

# Access itself is granted by the callers' IAM roles; the queue policies only refuse plain HTTP.
resource "aws_sqs_queue_policy" "this" {
  for_each = { queue = aws_sqs_queue.this, dlq = aws_sqs_queue.dlq }

  queue_url = each.value.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "DenyInsecureTransport"
      Effect    = "Deny"
      Principal = "*"
      Action    = "sqs:*"
      Resource  = each.value.arn
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })

  # Set after the redrive policy: a SetQueueAttributes call that omits the policy drops it in moto, the AWS of the
  # apply test (on AWS the order makes no difference).
  depends_on = [aws_sqs_queue_redrive_policy.this]
}
