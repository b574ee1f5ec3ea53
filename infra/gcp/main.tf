locals {
  # LOCATION-docker.pkg.dev/PROJECT/REPOSITORY/IMAGE@sha256:DIGEST, checked by the variable.
  image_parts = regex("^([a-z0-9-]+)-docker\\.pkg\\.dev/([^/]+)/([^/]+)/[^@]+@(sha256:[0-9a-f]{64})$", var.image_reference)
  registry = {
    location   = local.image_parts[0]
    project    = local.image_parts[1]
    repository = local.image_parts[2]
  }
  image_digest = local.image_parts[3]

  region = join("-", slice(split("-", var.zone), 0, 2))
  # Compute Engine names: lowercase letters, digits and hyphens; at most 50 characters here
  # so that the network's and the firewall rules' names, which add a suffix, stay within 63.
  name_from_id  = replace(substr("custody-${lower(replace(var.node_id, "/[^A-Za-z0-9-]/", "-"))}", 0, 50), "/-+$/", "")
  instance_name = coalesce(var.instance_name, local.name_from_id)
  labels        = merge(var.labels, { "custody-node" = substr(lower(replace(var.node_id, "/[^A-Za-z0-9_-]/", "_")), 0, 63) })

  # What the image's fixed command says (infra/gcp/Dockerfile; CI checks that both agree):
  # the peer and client listeners (--peer-listen, --client-listen; status stays on
  # 127.0.0.1). The blobs' bucket is not fixed by the image: it comes from the metadata
  # (tee-env-BLOB_BUCKET, below).
  peer_port   = 9000
  client_port = 9001
}

# The node's own identity towards Google: only what the launcher needs to pull the image,
# obtain attestation tokens and write logs: its own (such as why it refused to start the
# container), and the workload's on the debug image only; and what the node needs to keep
# its sealed blobs in its own bucket (storage.tf).
resource "google_service_account" "node" {
  account_id   = replace(substr(local.name_from_id, 0, 30), "/-+$/", "")
  display_name = "custody node ${var.node_id} (Confidential Space workload)"
}

# Attestation tokens from the launcher's socket: without this role the launcher cannot
# obtain a token and the node has no evidence to show its peers.
resource "google_project_iam_member" "workload_user" {
  project = var.project_id
  role    = "roles/confidentialcomputing.workloadUser"
  member  = "serviceAccount:${google_service_account.node.email}"
}

resource "google_project_iam_member" "log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.node.email}"
}

# Read access to the one repository the image is in, not to the project's registry.
resource "google_artifact_registry_repository_iam_member" "image_reader" {
  project    = local.registry.project
  location   = local.registry.location
  repository = local.registry.repository
  role       = "roles/artifactregistry.reader"
  member     = "serviceAccount:${google_service_account.node.email}"
}

resource "google_compute_address" "node" {
  count        = var.external_ip ? 1 : 0
  name         = "${local.instance_name}-ip"
  region       = local.region
  address_type = "EXTERNAL"
}

resource "google_compute_instance" "node" {
  #checkov:skip=CKV_GCP_40:No external address unless external_ip is set (default false), for peers on another cloud without a VPN; even then the firewall admits only the peers' and the operators' addresses, and the node authenticates every peer by its attestation.
  #checkov:skip=CKV_GCP_38:The boot disk holds the Confidential Space image (dm-verity) and the launcher's stateful partition, which the image encrypts with a key made at boot; no node state is written to it (the sealed blobs are in the node's bucket, sealed). A customer-supplied key would add nothing the node relies on.
  name         = local.instance_name
  zone         = var.zone
  machine_type = var.machine_type
  labels       = local.labels

  deletion_protection = var.deletion_protection

  confidential_instance_config {
    confidential_instance_type = "TDX"
  }

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  # A Confidential VM cannot be live-migrated: host maintenance stops it. It then comes back
  # on its own, the same instance (so the same identity in its tokens), and the node opens
  # its sealed state from its bucket again once its peers release its data key.
  scheduling {
    on_host_maintenance = "TERMINATE"
    automatic_restart   = true
  }

  boot_disk {
    auto_delete = true

    initialize_params {
      # The production image family (the debug family lets the operator in, and its tokens
      # say `dbgstat: enabled`, which production peers refuse).
      image = "projects/confidential-space-images/global/images/family/confidential-space"
      size  = var.boot_disk_size_gb
      type  = "pd-balanced"
    }
  }

  network_interface {
    subnetwork = google_compute_subnetwork.node.id

    dynamic "access_config" {
      for_each = google_compute_address.node
      content {
        nat_ip = access_config.value.address
      }
    }
  }

  service_account {
    email = google_service_account.node.email
    # The roles above are what limits the account; the launcher needs the cloud-platform
    # scope to call the attestation service.
    scopes = ["cloud-platform"]
  }

  metadata = {
    # The image, pinned by digest: the launcher pulls exactly this and reports the digest in
    # every token (`submods.container.image_digest`).
    "tee-image-reference" = var.image_reference
    # The container runs once: a node that exits stays stopped until the VM restarts, and
    # the token says so (`submods.container.restart_policy`). An operator looks at why it
    # stopped first; its state waits in the bucket.
    "tee-restart-policy" = "Never"
    # The two variables the image's launch policy allows, and nothing else (no tee-mount:
    # the image allows none, and the launcher would mount only a tmpfs anyway).
    "tee-env-NODE_ID"     = var.node_id
    "tee-env-BLOB_BUCKET" = google_storage_bucket.blobs.name
    # The image's policy allows log redirection on the debug image only; asking for it on
    # the production image makes the launcher refuse to start.
    "tee-container-log-redirect" = "false"
    "block-project-ssh-keys"     = "true"
    "serial-port-enable"         = "false"
  }

  lifecycle {
    # A new Confidential Space image in the family must not replace the VM as a side effect
    # of an apply: a new VM is a new instance id, so a new manifest. Replace it on purpose:
    # `terraform apply -replace=google_compute_instance.node` (the bucket is kept).
    # (A new image_reference only changes the metadata: the launcher reads it at boot, so
    # the running node keeps its image until the VM restarts, and then runs the new one,
    # which its peers accept only once the manifest names its digest.)
    ignore_changes = [boot_disk[0].initialize_params[0].image]
  }

  depends_on = [
    google_project_iam_member.workload_user,
    google_artifact_registry_repository_iam_member.image_reader,
    google_storage_bucket_iam_member.node_objects,
  ]
}
