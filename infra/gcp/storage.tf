# The node's sealed blobs. A Confidential Space workload gets no persistent disk (the
# launcher mounts only tmpfs into the container), so the node keeps its state in Cloud
# Storage instead (`enclave run --blob-bucket`), under the prefix of its node id.
#
# One bucket per node, like everything else in this module: the node's service account is
# granted objects in its own bucket only, so a node whose code or VM is compromised cannot
# delete or roll back another node's blobs (a shared bucket's IAM cannot be narrowed to
# one prefix without conditions that are easy to get wrong), and one node's bucket being
# deleted, misconfigured or locked up by a policy takes that node alone, which is what
# the placement rule counts on.
#
# The bucket is as untrusted as a Nitro parent's store: whoever administers the project
# can read, replace, roll back or delete its objects. The node writes nothing but sealed
# blobs to it and checks every blob it reads back (see infra/README.md for what such an
# administrator can and cannot do).

locals {
  # Bucket names are global: the project id (itself globally unique) and the VM's name,
  # cut to fit 63 characters with the suffix.
  blob_bucket_default = "${replace(substr("${var.project_id}-${local.instance_name}", 0, 57), "/-+$/", "")}-blobs"
  blob_bucket         = coalesce(var.blob_bucket_name, local.blob_bucket_default)
  blob_location       = upper(coalesce(var.blob_bucket_location, local.region))
}

resource "google_storage_bucket" "blobs" {
  #checkov:skip=CKV_GCP_62:Usage logs would need a second bucket that holds object names and requesters only; the node itself detects what matters (a missing, replaced or older blob), and an operator who wants a record of the bucket's use enables Cloud Storage's Data Access audit logs for the project.
  name     = local.blob_bucket
  project  = var.project_id
  location = local.blob_location
  labels   = local.labels

  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  # `terraform destroy` fails while the bucket holds objects: deleting them deletes the
  # node's share of every key it holds.
  force_destroy = false

  # An operator can bring back a blob that was overwritten or deleted (by mistake, or by
  # whoever else administers the project). The node does not rely on it: it refuses an
  # older version of a blob by itself.
  versioning {
    enabled = true
  }

  # The node rewrites its index and pools often, so noncurrent versions are deleted after
  # `blob_noncurrent_version_days`: long enough to notice a mistake and recover from it,
  # short enough that the bucket does not grow without bound. Live objects never expire,
  # and no retention policy is set: it would forbid the node to overwrite or delete its
  # own blobs during the retention period, and the node must do both.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.blob_noncurrent_version_days
    }
    action {
      type = "Delete"
    }
  }

  dynamic "encryption" {
    for_each = var.blob_kms_key_name == null ? [] : [var.blob_kms_key_name]
    content {
      default_kms_key_name = encryption.value
    }
  }

  depends_on = [google_kms_crypto_key_iam_member.blobs]
}

# Read, write, list and delete objects in this bucket and nothing else: no project-wide
# storage role, no right to change the bucket or its IAM.
resource "google_storage_bucket_iam_member" "node_objects" {
  bucket = google_storage_bucket.blobs.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.node.email}"
}

# With a customer-managed key, Cloud Storage's own service agent encrypts and decrypts the
# objects, so it needs the key; the node's account does not. The key adds the key holder's
# control (disabling it makes the blobs unreadable to anyone, the node included), not
# secrecy: the blobs are sealed already.
data "google_storage_project_service_account" "gcs" {
  count   = var.blob_kms_key_name == null ? 0 : 1
  project = var.project_id
}

resource "google_kms_crypto_key_iam_member" "blobs" {
  count         = var.blob_kms_key_name == null ? 0 : 1
  crypto_key_id = var.blob_kms_key_name
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${data.google_storage_project_service_account.gcs[0].email_address}"
}
