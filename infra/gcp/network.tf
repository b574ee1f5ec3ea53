# A network of the node's own: the rules below are the only ones that apply to it. Ingress
# is denied unless allowed (Google's implied rule); egress is denied here unless allowed.
resource "google_compute_network" "node" {
  name                    = "${local.instance_name}-net"
  auto_create_subnetworks = false
}

resource "google_compute_subnetwork" "node" {
  name          = "${local.instance_name}-subnet"
  region        = local.region
  network       = google_compute_network.node.id
  ip_cidr_range = var.subnet_cidr
  # Google's APIs (Artifact Registry, the attestation service, Cloud Storage, logging)
  # without an external address.
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_5_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_firewall" "peer_in" {
  name          = "${local.instance_name}-peer-in"
  network       = google_compute_network.node.id
  direction     = "INGRESS"
  priority      = 1000
  source_ranges = var.peer_cidrs
  target_service_accounts = [
    google_service_account.node.email,
  ]

  allow {
    protocol = "tcp"
    ports    = [tostring(local.peer_port)]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_firewall" "client_in" {
  name          = "${local.instance_name}-client-in"
  network       = google_compute_network.node.id
  direction     = "INGRESS"
  priority      = 1000
  source_ranges = var.operator_cidrs
  target_service_accounts = [
    google_service_account.node.email,
  ]

  allow {
    protocol = "tcp"
    ports    = [tostring(local.client_port)]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# The node dials its peers at their manifest addresses.
resource "google_compute_firewall" "peer_out" {
  name               = "${local.instance_name}-peer-out"
  network            = google_compute_network.node.id
  direction          = "EGRESS"
  priority           = 1000
  destination_ranges = var.peer_cidrs

  allow {
    protocol = "tcp"
    ports    = [tostring(local.peer_port)]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# HTTPS to Google's APIs: the launcher pulls the image and asks the attestation service for
# tokens, and the node reads and writes its sealed blobs in Cloud Storage. The metadata
# server (DNS, time, the service account's tokens) is reached whatever the rules say.
resource "google_compute_firewall" "https_out" {
  name               = "${local.instance_name}-https-out"
  network            = google_compute_network.node.id
  direction          = "EGRESS"
  priority           = 1000
  destination_ranges = ["0.0.0.0/0"]

  allow {
    protocol = "tcp"
    ports    = ["443"]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_firewall" "deny_out" {
  name               = "${local.instance_name}-deny-out"
  network            = google_compute_network.node.id
  direction          = "EGRESS"
  priority           = 65000
  destination_ranges = ["0.0.0.0/0"]

  deny {
    protocol = "all"
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}
