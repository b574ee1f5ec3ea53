# One custody node on Google Cloud Confidential Space. Apply once per node, each with its
# own state; see infra/README.md for the steps and what goes into the manifest.

terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = local.region
  zone    = var.zone
}
