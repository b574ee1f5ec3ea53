variable "region" {
  description = "AWS region of the host."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as eu-west-1."
  }
}

variable "node_id" {
  description = "The node's id in the manifest. It names the host's IAM role and goes into /etc/custody/node.env for the parent (the enclave has it baked into its image: infra/nitro/Dockerfile)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]{1,64}$", var.node_id))
    error_message = "node_id must be 1 to 64 characters out of A-Z a-z 0-9 . _ - (the manifest's identifier rule)."
  }
}

variable "ami_id" {
  description = "AMI of the host: Amazon Linux 2023 for x86_64 (user data installs aws-nitro-enclaves-cli from its repositories). Pinned rather than looked up, since a new AMI means a new instance, so a new PCR4 and a new manifest."
  type        = string

  validation {
    condition     = can(regex("^ami-([0-9a-f]{8}|[0-9a-f]{17})$", var.ami_id))
    error_message = "ami_id must be an AMI id: ami- followed by 8 or 17 lowercase hex digits."
  }
}

variable "instance_type" {
  description = "An x86_64 instance type that supports Nitro Enclaves, with at least 4 vCPUs: allocator.yaml gives the enclave 2 vCPUs and 4096 MiB, and the parent keeps the rest."
  type        = string
  default     = "m6i.xlarge"

  validation {
    condition     = can(regex("^(c5|c5a|c5n|c6i|c6a|c7i|c7a|m5|m5a|m5n|m6i|m6a|m7i|m7a|r5|r5a|r5n|r6i|r6a|r7i|r7a)\\.([0-9]+)?xlarge$", var.instance_type))
    error_message = "instance_type must be an x86_64 C, M or R type of the Nitro generations (c5 to c7, m5 to m7, r5 to r7), size xlarge or larger."
  }
}

variable "vpc_id" {
  description = "VPC the host's security group is created in."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]{8,17}$", var.vpc_id))
    error_message = "vpc_id must be a VPC id (vpc-...)."
  }
}

variable "subnet_id" {
  description = "Subnet of the host, in vpc_id."
  type        = string

  validation {
    condition     = can(regex("^subnet-[0-9a-f]{8,17}$", var.subnet_id))
    error_message = "subnet_id must be a subnet id (subnet-...)."
  }
}

variable "public_ip" {
  description = "Give the host a public address. Without one (the default) peers on other clouds reach it through a VPN or interconnect that routes to the subnet."
  type        = bool
  default     = false
}

variable "peer_cidrs" {
  description = "Addresses of the other nodes (their parents' on Nitro, the VMs' on Confidential Space), as CIDR blocks: the only sources allowed on the peer port, and the only destinations the parent may dial on it."
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

variable "root_volume_gib" {
  description = "Size of the encrypted root volume, GiB. It holds the parent's sealed-blob directory (/var/lib/custody/blobs), the EIF and the system."
  type        = number
  default     = 30

  validation {
    condition     = var.root_volume_gib >= 16 && var.root_volume_gib <= 1024 && floor(var.root_volume_gib) == var.root_volume_gib
    error_message = "root_volume_gib must be a whole number from 16 to 1024."
  }
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the root volume; null: the account's default EBS key. The volume holds only sealed blobs and public files, so the key guards against a lost volume, not against the parent."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]{36}$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/UUID) or null."
  }
}

variable "ssm_access" {
  description = "Attach AmazonSSMManagedInstanceCore to the host's role, so that operators install the EIF, the parent and the manifest through Systems Manager; no inbound port is opened for it. The host is outside the trust boundary either way (the enclave trusts nothing on it)."
  type        = bool
  default     = true
}

variable "termination_protection" {
  description = "Refuse to terminate the instance through the API. A new instance is a new PCR4, so a new manifest."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.tags : length(k) >= 1 && length(k) <= 128 && length(v) <= 256 && !startswith(lower(k), "aws:")])
    error_message = "tags must have keys of 1 to 128 characters, not starting with aws:, and values of at most 256 characters."
  }
}
