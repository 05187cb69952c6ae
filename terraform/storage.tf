# The result store: an S3 bucket the collector writes (s3://bucket/prefix) and any instance or user with the reader
# policy reads. Encrypted, versioned, never public, TLS only.

locals {
  result_bucket = coalesce(var.result_bucket_name,
  replace(lower("${local.prefix}grid-${local.env}-results-${data.aws_caller_identity.current.account_id}-${var.region}"), "_", "-"))
}

resource "aws_s3_bucket" "results" {
  #checkov:skip=CKV_AWS_18:Server access logs need a second bucket per deployment; object access is audited with the account's CloudTrail data events where required, and only holders of the reader policy can read at all
  #checkov:skip=CKV_AWS_144:Results can be made again by re-running their job; versioning guards against overwrites, and a second region would double the storage of data that is not irreplaceable
  #checkov:skip=CKV2_AWS_62:Nothing consumes the bucket's events: the collector writes results and users read them with grid results
  bucket        = local.result_bucket
  force_destroy = var.force_destroy

  lifecycle {
    precondition {
      condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", local.result_bucket))
      error_message = "The result bucket's name \"${local.result_bucket}\" is not a valid S3 bucket name (3..63 characters): set result_bucket_name."
    }
  }
}

resource "aws_s3_bucket_public_access_block" "results" {
  bucket                  = aws_s3_bucket.results.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "results" {
  bucket = aws_s3_bucket.results.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "results" {
  bucket = aws_s3_bucket.results.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.kms_key_arn == null ? "AES256" : "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = var.kms_key_arn != null
  }
}

resource "aws_s3_bucket_versioning" "results" {
  bucket = aws_s3_bucket.results.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "results" {
  bucket = aws_s3_bucket.results.id

  rule {
    id     = "old-versions-and-uploads"
    status = "Enabled"
    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.result_noncurrent_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.results]
}

resource "aws_s3_bucket_policy" "results" {
  bucket = aws_s3_bucket.results.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "DenyInsecureTransport"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [aws_s3_bucket.results.arn, "${aws_s3_bucket.results.arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })

  depends_on = [aws_s3_bucket_public_access_block.results]
}
