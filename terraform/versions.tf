terraform {
  # 1.9: validation blocks that read the parameter registry; 1.7: mock providers in terraform test.
  required_version = ">= 1.9"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.50, < 6.0"
    }
  }
}
