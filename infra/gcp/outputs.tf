output "instance_id" {
  description = "The VM's numeric id: the token's `submods.gce.instance_id`, pinned in the node's manifest set as `instance_id`."
  value       = google_compute_instance.node.instance_id
}

output "project_id" {
  description = "The token's `submods.gce.project_id`, pinned as `project_id`."
  value       = var.project_id
}

output "zone" {
  description = "The token's `submods.gce.zone`, pinned as `zone`."
  value       = var.zone
}

output "image_digest" {
  description = "The workload image's digest: the token's `submods.container.image_digest`, pinned as `image_digest`."
  value       = local.image_digest
}

output "instance_name" {
  description = "The VM's name (the token's `submods.gce.instance_name`; not pinned: a name can be reused, an instance id cannot)."
  value       = google_compute_instance.node.name
}

output "peer_address" {
  description = "host:port peers dial: the node's `address` in the manifest (the external address when there is one)."
  value       = "${var.external_ip ? google_compute_address.node[0].address : google_compute_instance.node.network_interface[0].network_ip}:${local.peer_port}"
}

output "service_account_email" {
  description = "The node's service account (the token's `google_service_accounts`)."
  value       = google_service_account.node.email
}

output "blob_bucket" {
  description = "The bucket of the node's sealed blobs (the container's BLOB_BUCKET, shown in its tokens' `submods.container.env`)."
  value       = google_storage_bucket.blobs.name
}

output "blob_prefix" {
  description = "The folder of the node's blobs in the bucket: its node id, `--blob-prefix`'s default."
  value       = var.node_id
}

output "manifest_measurements" {
  description = "The node's measurement set, as the manifest's `measurements` list takes it: the code, the VM's identity, and the hardware (the VM is TDX, so a token claiming another model is refused)."
  value = {
    "gcp-cs" = {
      image_digest = local.image_digest
      project_id   = var.project_id
      zone         = var.zone
      instance_id  = google_compute_instance.node.instance_id
      hwmodel      = "GCP_INTEL_TDX"
    }
  }
}
