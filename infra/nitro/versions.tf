# The parent host of one custody node on AWS Nitro Enclaves. Apply once per node, each with
# its own state; see infra/README.md for the steps and what goes into the manifest.

terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, { "custody-node" = var.node_id })
  }
}
