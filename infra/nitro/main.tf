locals {
  # IAM names allow the identifier alphabet; 64 characters at most.
  role_name = substr("custody-parent-${var.node_id}", 0, 64)

  # The parent's listeners, as custody-parent.service starts it (--peer-listen,
  # --client-listen; its health port, 9100, stays on 127.0.0.1). CI checks that the unit
  # says the same.
  peer_port   = 9000
  client_port = 9001

  # cloud-init: the files are written first, the package is installed next, and runcmd
  # runs last, so the allocator settings replace the package's defaults.
  cloud_config = {
    packages = ["aws-nitro-enclaves-cli"]
    users = [
      "default",
      { name = "custody", system = true, shell = "/sbin/nologin", no_create_home = true },
    ]
    write_files = [
      { path = "/etc/custody/allocator.yaml", permissions = "0644", content = file("${path.module}/allocator.yaml") },
      { path = "/etc/custody/node.env", permissions = "0644", content = "NODE_ID=${var.node_id}\n" },
      { path = "/etc/systemd/system/custody-parent.service", permissions = "0644", content = file("${path.module}/custody-parent.service") },
      { path = "/etc/systemd/system/enclave.service", permissions = "0644", content = file("${path.module}/enclave.service") },
    ]
    runcmd = [
      ["install", "-m", "0644", "/etc/custody/allocator.yaml", "/etc/nitro_enclaves/allocator.yaml"],
      ["install", "-d", "-m", "0755", "/opt/custody"],
      ["systemctl", "daemon-reload"],
      ["systemctl", "enable", "--now", "nitro-enclaves-allocator.service"],
      # Enabled, not started: the parent binary, the EIF and the signed manifest are
      # installed afterwards (infra/README.md), then both units are started.
      ["systemctl", "enable", "custody-parent.service", "enclave.service"],
    ]
  }
  user_data = join("\n", ["#cloud-config", yamlencode(local.cloud_config)])
}

data "aws_caller_identity" "current" {}

# The host's role. PCR3 measures its ARN, so a node's manifest set can pin the host by its
# role as well as by its instance id (PCR4): give each node its own role, used by no other
# instance.
resource "aws_iam_role" "parent" {
  name        = local.role_name
  description = "Parent host of custody node ${var.node_id} (pinned by PCR3)"

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ec2.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = { StringEquals = { "aws:SourceAccount" = data.aws_caller_identity.current.account_id } }
    }]
  })
}

# Nothing else is granted: the parent relays bytes and stores sealed blobs on its own disk.
resource "aws_iam_role_policy_attachment" "ssm" {
  count      = var.ssm_access ? 1 : 0
  role       = aws_iam_role.parent.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "parent" {
  name = local.role_name
  role = aws_iam_role.parent.name
}

resource "aws_security_group" "parent" {
  name        = "custody-parent-${var.node_id}"
  description = "custody node ${var.node_id}: peer port from peers, client port from operators"
  vpc_id      = var.vpc_id

  ingress {
    description = "attested channels from the other nodes"
    protocol    = "tcp"
    from_port   = local.peer_port
    to_port     = local.peer_port
    cidr_blocks = var.peer_cidrs
  }

  ingress {
    description = "custody clients (operators)"
    protocol    = "tcp"
    from_port   = local.client_port
    to_port     = local.client_port
    cidr_blocks = var.operator_cidrs
  }

  egress {
    description = "the enclave's connections to its peers, relayed by the parent"
    protocol    = "tcp"
    from_port   = local.peer_port
    to_port     = local.peer_port
    cidr_blocks = var.peer_cidrs
  }

  egress {
    description = "HTTPS: the distribution's package repositories and Systems Manager"
    protocol    = "tcp"
    from_port   = 443
    to_port     = 443
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_instance" "parent" {
  ami                         = var.ami_id
  instance_type               = var.instance_type
  subnet_id                   = var.subnet_id
  vpc_security_group_ids      = [aws_security_group.parent.id]
  iam_instance_profile        = aws_iam_instance_profile.parent.name
  associate_public_ip_address = var.public_ip
  monitoring                  = true
  ebs_optimized               = true
  disable_api_termination     = var.termination_protection
  user_data                   = local.user_data

  enclave_options {
    enabled = true
  }

  # IMDSv2 only, one hop: the instance's role credentials are not reachable by a
  # forwarded request or from a container on the host.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  root_block_device {
    encrypted             = true
    kms_key_id            = var.kms_key_arn
    volume_type           = "gp3"
    volume_size           = var.root_volume_gib
    delete_on_termination = true
  }

  tags = {
    Name = "custody-parent-${var.node_id}"
  }

  lifecycle {
    # A new AMI or new user data must not replace or restart the host as a side effect of
    # an apply: a new instance is a new PCR4, so a new manifest. Replace it on purpose:
    # `terraform apply -replace=aws_instance.parent`.
    ignore_changes = [ami, user_data]
  }
}
