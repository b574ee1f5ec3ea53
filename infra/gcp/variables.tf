variable "project_id" {
  description = "Project the node's VM, network and service account are created in. It is the node's `project_id` in its token and in the manifest."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project id: 6 to 30 characters, lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "zone" {
  description = "Zone of the VM (one that offers C3 machines with Intel TDX). It is the node's `zone` in its token and in the manifest."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+-[a-z]$", var.zone))
    error_message = "zone must be a zone name such as us-central1-a."
  }
}

variable "node_id" {
  description = "The node's id in the manifest; passed to the container as NODE_ID (tee-env-NODE_ID), the one variable the image's launch policy lets an operator set."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]{1,64}$", var.node_id))
    error_message = "node_id must be 1 to 64 characters out of A-Z a-z 0-9 . _ - (the manifest's identifier rule)."
  }
}

variable "instance_name" {
  description = "Name of the VM (the token's `submods.gce.instance_name`); defaults to custody-<node_id> in lowercase."
  type        = string
  default     = null

  validation {
    condition     = var.instance_name == null || can(regex("^[a-z]([-a-z0-9]{0,48}[a-z0-9])?$", var.instance_name))
    error_message = "instance_name must be a Compute Engine name of 1 to 50 characters (the network and firewall rules add a suffix): lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "image_reference" {
  description = "The workload image in Artifact Registry, pinned by digest: LOCATION-docker.pkg.dev/PROJECT/REPOSITORY/IMAGE@sha256:<64 hex>. Its digest is the manifest's `image_digest`; a tag is refused, since the launcher would run whatever the tag points to at boot."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9-]+-docker\\.pkg\\.dev/[a-z][a-z0-9-]{4,28}[a-z0-9]/[a-z0-9._-]+/[a-z0-9._/-]+@sha256:[0-9a-f]{64}$", var.image_reference))
    error_message = "image_reference must be an Artifact Registry image pinned by digest: LOCATION-docker.pkg.dev/PROJECT/REPOSITORY/IMAGE@sha256:<64 lowercase hex>."
  }
}

variable "machine_type" {
  description = "C3 machine type (Intel TDX). The node needs at least 4 vCPUs: auxiliary info and signing are CPU-bound, as on Nitro where the enclave gets 2 of the host's."
  type        = string
  default     = "c3-standard-4"

  validation {
    condition     = can(regex("^c3-standard-(4|8|22|44|88|176)$", var.machine_type))
    error_message = "machine_type must be a C3 standard machine type with at least 4 vCPUs (c3-standard-4 and up): Confidential Space with TDX runs on C3."
  }
}

variable "boot_disk_size_gb" {
  description = "Size of the boot disk, GB. It holds the Confidential Space image and the container's layers; no node state is written to it."
  type        = number
  default     = 20

  validation {
    condition     = var.boot_disk_size_gb >= 11 && var.boot_disk_size_gb <= 200 && floor(var.boot_disk_size_gb) == var.boot_disk_size_gb
    error_message = "boot_disk_size_gb must be a whole number from 11 to 200."
  }
}

variable "blob_bucket_name" {
  description = "Name of the Cloud Storage bucket created for the node's sealed blobs (passed to the container as BLOB_BUCKET); defaults to <project_id>-<instance name>-blobs, cut to 63 characters. Bucket names are global: choose another if that one is taken."
  type        = string
  default     = null

  validation {
    condition     = var.blob_bucket_name == null || (can(regex("^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$", var.blob_bucket_name)) && !startswith(var.blob_bucket_name, "goog") && !strcontains(var.blob_bucket_name, "google"))
    error_message = "blob_bucket_name must be 3 to 63 characters of lowercase letters, digits, - and _ (no dots, which need a verified domain), starting and ending with a letter or digit, not starting with goog nor containing google."
  }
}

variable "blob_bucket_location" {
  description = "Location of the blobs' bucket: a region (default: the VM's, the shortest path), or a dual- or multi-region such as EU or US for blobs that outlive a region's outage."
  type        = string
  default     = null

  validation {
    condition     = var.blob_bucket_location == null || can(regex("^[A-Za-z]+[0-9]*(-[A-Za-z]+[0-9]+)?$", var.blob_bucket_location))
    error_message = "blob_bucket_location must be a Cloud Storage location such as us-central1, EU or NAM4."
  }
}

variable "blob_noncurrent_version_days" {
  description = "Days an overwritten or deleted blob's old version is kept in the bucket (versioning) before it is deleted: the time an operator has to notice a mistake and restore a version. The node never reads old versions."
  type        = number
  default     = 30

  validation {
    condition     = var.blob_noncurrent_version_days >= 1 && var.blob_noncurrent_version_days <= 3650 && floor(var.blob_noncurrent_version_days) == var.blob_noncurrent_version_days
    error_message = "blob_noncurrent_version_days must be a whole number of days from 1 to 3650."
  }
}

variable "blob_kms_key_name" {
  description = "Optional Cloud KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K, in the bucket's location) the bucket encrypts objects with, instead of Google's default key. The blobs are sealed by the node either way; the key gives its holder a switch that makes them unreadable to anyone, the node included."
  type        = string
  default     = null

  validation {
    condition     = var.blob_kms_key_name == null || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", var.blob_kms_key_name))
    error_message = "blob_kms_key_name must be a key's resource name: projects/P/locations/L/keyRings/R/cryptoKeys/K."
  }
}

variable "subnet_cidr" {
  description = "Address range of the node's own subnet (the module creates a dedicated network, so that no other firewall rule applies to the node)."
  type        = string
  default     = "10.80.0.0/28"

  validation {
    condition     = can(cidrnetmask(var.subnet_cidr)) && startswith(var.subnet_cidr, "10.")
    error_message = "subnet_cidr must be an IPv4 CIDR block inside 10.0.0.0/8."
  }
}

variable "external_ip" {
  description = "Give the node a static external address. Without one (the default) peers on other clouds reach it through a VPN or interconnect that routes to the subnet, and the node reaches Google's APIs through Private Google Access."
  type        = bool
  default     = false
}

variable "peer_cidrs" {
  description = "Addresses of the other nodes (their parents' on Nitro, the VMs' on Confidential Space), as CIDR blocks: the only sources allowed on the peer port, and the only destinations the node may dial on it."
  type        = list(string)

  validation {
    condition     = length(var.peer_cidrs) > 0 && alltrue([for c in var.peer_cidrs : can(cidrnetmask(c)) && c != "0.0.0.0/0"])
    error_message = "peer_cidrs must list at least one IPv4 CIDR block, and not 0.0.0.0/0."
  }
}

variable "operator_cidrs" {
  description = "Addresses operators run `custody` from, as CIDR blocks: the only sources allowed on the client port."
  type        = list(string)

  validation {
    condition     = length(var.operator_cidrs) > 0 && alltrue([for c in var.operator_cidrs : can(cidrnetmask(c)) && c != "0.0.0.0/0"])
    error_message = "operator_cidrs must list at least one IPv4 CIDR block, and not 0.0.0.0/0."
  }
}

variable "deletion_protection" {
  description = "Refuse to delete the VM. Deleting it ends the node as its manifest entry knows it: a new VM is a new instance id, so a new manifest (see infra/README.md). Its blobs stay in the bucket, which Terraform does not delete while it holds objects."
  type        = bool
  default     = true
}

variable "labels" {
  description = "Labels added to every resource that takes them."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))])
    error_message = "labels must follow Google's label rules: lowercase keys starting with a letter, values of lowercase letters, digits, _ and -."
  }
}
