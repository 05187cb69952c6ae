variable "name" {
  description = "Name of the queue; its dead-letter queue is this name plus dlq_suffix."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,80}$", var.name))
    error_message = "name = \"${var.name}\": must be 1..80 letters, digits, '-' or '_' (an SQS queue name)."
  }
}

variable "dlq_suffix" {
  description = "Suffix of the dead-letter queue's name (the grid looks for '<queue>-dlq')."
  type        = string
  default     = "-dlq"
}

variable "visibility_timeout_seconds" {
  description = "Seconds a received message stays invisible to other readers."
  type        = number

  validation {
    condition     = var.visibility_timeout_seconds >= 0 && var.visibility_timeout_seconds <= 43200 && floor(var.visibility_timeout_seconds) == var.visibility_timeout_seconds
    error_message = "visibility_timeout_seconds = ${var.visibility_timeout_seconds}: must be a whole number of seconds in 0..43200."
  }
}

variable "max_receive_count" {
  description = "Receives after which a message moves to the dead-letter queue."
  type        = number

  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000 && floor(var.max_receive_count) == var.max_receive_count
    error_message = "max_receive_count = ${var.max_receive_count}: must be a whole number in 1..1000."
  }
}

variable "message_retention_seconds" {
  description = "Seconds SQS keeps a message of the queue (60..1209600)."
  type        = number
  default     = 345600 # SQS's default, 4 days

  validation {
    condition     = var.message_retention_seconds >= 60 && var.message_retention_seconds <= 1209600
    error_message = "message_retention_seconds = ${var.message_retention_seconds}: must be in 60..1209600 (1 minute to 14 days)."
  }
}

variable "dlq_message_retention_seconds" {
  description = "Seconds SQS keeps a dead letter: the longest allowed, so there is time to look at it."
  type        = number
  default     = 1209600 # 14 days

  validation {
    condition     = var.dlq_message_retention_seconds >= 60 && var.dlq_message_retention_seconds <= 1209600
    error_message = "dlq_message_retention_seconds = ${var.dlq_message_retention_seconds}: must be in 60..1209600 (1 minute to 14 days)."
  }
}

variable "kms_key_arn" {
  description = "Customer managed KMS key for server-side encryption; null uses SQS-managed keys (SSE-SQS)."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags of both queues."
  type        = map(string)
  default     = {}
}
