"""Offline checks of the deployment files, run by .ci/infra with python-hcl2 installed.

- Every .tf file under infra/ parses.
- Every variable has a description and a type, and every variable that is not a bool has
  a validation block; every output has a description.
- What only a real cloud would otherwise reveal, checked across files: the Confidential
  Space VM's metadata asks for nothing the workload image's launch policy refuses (the
  launcher would not start it): it sets exactly the variables the policy allows, which are
  exactly the ones the image's fixed command uses, and no mount; the ports are the
  command's; the blobs' bucket it names is the module's own, private and versioned, and
  the node's service account may use objects in that bucket only. The Nitro host's
  security group opens the ports the parent's unit listens on.

Usage: check.py INFRA_DIR. Prints each failure and exits 1 if there is any.
"""

import json
import re
import shlex
import sys
from pathlib import Path

import hcl2
from hcl2 import SerializationOptions

OPTIONS = SerializationOptions(
    strip_string_quotes=True, with_comments=False, explicit_blocks=False
)


class Failures:
    def __init__(self):
        self.items = []

    def add(self, where, what):
        self.items.append(f"{where}: {what}")

    def check(self, ok, where, what):
        if not ok:
            self.add(where, what)


def parse_all(root, failures):
    """Parses every .tf file; returns {directory: [(path, document)]}."""
    parsed = {}
    files = sorted(root.rglob("*.tf"))
    if not files:
        failures.add(str(root), "no .tf file found")
    for path in files:
        try:
            document = hcl2.loads(path.read_text(), serialization_options=OPTIONS)
        except Exception as error:  # the parser raises several unrelated types
            failures.add(str(path), f"does not parse: {error}")
            continue
        parsed.setdefault(path.parent, []).append((path, document))
    return parsed


def blocks(documents, kind):
    """Yields (path, name, body) for every `kind "name" {}` block of the documents."""
    for path, document in documents:
        for entry in document.get(kind, []):
            for name, body in entry.items():
                yield path, name, body


def resources(documents, rtype):
    for path, document in documents:
        for entry in document.get("resource", []):
            for name, body in entry.get(rtype, {}).items():
                yield path, name, body


def merged_locals(documents):
    values = {}
    for _, document in documents:
        for entry in document.get("locals", []):
            values.update(entry)
    return values


def check_interface(documents, failures):
    for path, name, body in blocks(documents, "variable"):
        where = f"{path}: variable {name}"
        failures.check(bool(body.get("description")), where, "has no description")
        vtype = body.get("type")
        failures.check(vtype is not None, where, "has no type")
        if vtype not in (None, "bool", "${bool}"):
            failures.check(
                bool(body.get("validation")), where, "has no validation block"
            )
    for path, name, body in blocks(documents, "output"):
        failures.check(
            bool(body.get("description")),
            f"{path}: output {name}",
            "has no description",
        )


def dockerfile(path):
    """Returns (labels, cmd argv) of a Dockerfile, with continuation lines joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    labels, cmd = {}, None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("LABEL "):
            for key, value in re.findall(r'"([^"]+)"="([^"]*)"', line):
                labels[key] = value
        elif line.startswith("CMD "):
            cmd = json.loads(line[len("CMD ") :])
    return labels, cmd


def env_references(text):
    """The names of the variables a shell command expands (`$NAME`, `${NAME...}`)."""
    return set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text))


def flag(argv, name):
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
    return None


def check_gcp(directory, documents, failures):
    where = str(directory / "Dockerfile")
    labels, cmd = dockerfile(directory / "Dockerfile")
    if not cmd:
        failures.add(where, "no CMD")
        return
    # ["/bin/sh", "-c", "exec /usr/local/bin/enclave run ..."]
    argv = shlex.split(cmd[-1])
    failures.check(
        argv[1:3] == ["/usr/local/bin/enclave", "run"], where, "CMD does not run the node"
    )
    failures.check(flag(argv, "--provider") == "gcp-cs", where, "CMD is not --provider gcp-cs")
    failures.check("--sim" not in argv, where, "CMD runs the simulator")
    failures.check(
        labels.get("tee.launch_policy.allow_cmd_override") == "false",
        where,
        "the launch policy lets the operator replace the command",
    )
    failures.check(
        labels.get("tee.launch_policy.log_redirect") in ("debugonly", "never"),
        where,
        "the launch policy lets a production image's logs leave the VM",
    )

    local = merged_locals(documents)
    instances = list(resources(documents, "google_compute_instance"))
    if len(instances) != 1:
        failures.add(str(directory), "expected exactly one google_compute_instance")
        return
    path, _, vm = instances[0]
    where = f"{path}: google_compute_instance"
    metadata = vm.get("metadata", {})

    # The blobs go to the bucket the metadata names: the command reads it from the
    # environment, and keeps no state in the container.
    failures.check(
        flag(argv, "--blob-bucket") == "${BLOB_BUCKET:?set tee-env-BLOB_BUCKET}",
        str(directory / "Dockerfile"),
        "CMD does not keep the blobs in the bucket named by BLOB_BUCKET",
    )
    failures.check("--blob-dir" not in argv, str(directory / "Dockerfile"), "CMD keeps blobs in a directory")
    for name, option in (("peer_port", "--peer-listen"), ("client_port", "--client-listen")):
        listen = flag(argv, option) or ""
        failures.check(
            listen == f"0.0.0.0:{local.get(name)}",
            where,
            f"local.{name} {local.get(name)!r} is not the image's {option} {listen!r}",
        )

    failures.check(metadata.get("tee-restart-policy") == "Never", where, "tee-restart-policy is not Never")
    failures.check("tee-cmd" not in metadata, where, "sets tee-cmd, which the image refuses")
    failures.check(
        metadata.get("tee-container-log-redirect") == "false",
        where,
        "asks for log redirection, which the image refuses on the production image",
    )
    # The variables: the metadata sets exactly those the launch policy allows (one more and
    # the launcher refuses to start; one fewer and the command stops at `:?`), and the
    # policy allows exactly those the command uses (any other could still change how the
    # binary behaves).
    allowed_env = set(filter(None, labels.get("tee.launch_policy.allow_env_override", "").split(",")))
    set_env = {key[len("tee-env-") :] for key in metadata if key.startswith("tee-env-")}
    used_env = env_references(cmd[-1])
    dockerfile_where = str(directory / "Dockerfile")
    for name in sorted(set_env - allowed_env):
        failures.add(where, f"tee-env-{name} is not allowed by the image")
    for name in sorted(allowed_env - set_env):
        failures.add(where, f"the image needs {name}, and no tee-env-{name} sets it")
    for name in sorted(allowed_env ^ used_env):
        failures.add(dockerfile_where, f"{name} is allowed by the launch policy or used by CMD, not both")
    # No mount: the state is in the bucket, and the launcher would mount only a tmpfs.
    failures.check("tee-mount" not in metadata, where, "sets tee-mount: the image allows no mount")
    failures.check(
        not labels.get("tee.launch_policy.allow_mount_destinations"),
        dockerfile_where,
        "the launch policy allows a mount",
    )
    failures.check(
        metadata.get("tee-image-reference") == "${var.image_reference}",
        where,
        "tee-image-reference is not the digest-pinned variable",
    )

    image = vm["boot_disk"][0]["initialize_params"][0]["image"]
    failures.check(
        image.endswith("/confidential-space-images/global/images/family/confidential-space"),
        where,
        f"boot image {image!r} is not the production Confidential Space family",
    )
    kind = vm.get("confidential_instance_config", [{}])[0].get("confidential_instance_type")
    failures.check(kind == "TDX", where, f"confidential_instance_type is {kind!r}, not TDX")

    check_gcp_bucket(documents, metadata, failures)


def check_gcp_bucket(documents, metadata, failures):
    """The bucket BLOB_BUCKET names is the module's, private and versioned, and the node's
    service account is granted objects in it and no storage role anywhere else."""
    buckets = list(resources(documents, "google_storage_bucket"))
    if len(buckets) != 1:
        failures.add("gcp", "expected exactly one google_storage_bucket (the node's blobs)")
        return
    path, name, bucket = buckets[0]
    where = f"{path}: google_storage_bucket.{name}"
    failures.check(
        metadata.get("tee-env-BLOB_BUCKET") == f"${{google_storage_bucket.{name}.name}}",
        where,
        "tee-env-BLOB_BUCKET does not name this bucket",
    )
    failures.check(bucket.get("uniform_bucket_level_access") is True, where, "uniform bucket-level access is off")
    failures.check(bucket.get("public_access_prevention") == "enforced", where, "public access prevention is not enforced")
    failures.check(
        bucket.get("versioning", [{}])[0].get("enabled") is True, where, "versioning is off"
    )
    failures.check(bucket.get("force_destroy", False) is False, where, "force_destroy deletes the blobs with the bucket")
    failures.check(
        not bucket.get("retention_policy"),
        where,
        "a retention policy forbids the node to overwrite and delete its own blobs",
    )

    node = "serviceAccount:${google_service_account.node.email}"
    grants = [
        (path, body)
        for path, _, body in resources(documents, "google_storage_bucket_iam_member")
        if body.get("member") == node
    ]
    failures.check(
        [(body.get("bucket"), body.get("role")) for _, body in grants]
        == [(f"${{google_storage_bucket.{name}.name}}", "roles/storage.objectUser")],
        where,
        "the node's service account is not granted exactly roles/storage.objectUser on this bucket",
    )
    for kind in ("google_project_iam_member", "google_project_iam_binding", "google_storage_bucket_iam_binding"):
        for path, rname, body in resources(documents, kind):
            role = body.get("role", "")
            failures.check(
                not role.startswith("roles/storage."),
                f"{path}: {kind}.{rname}",
                f"grants {role} beyond the node's bucket",
            )


def check_nitro(directory, documents, failures):
    local = merged_locals(documents)
    unit = (directory / "custody-parent.service").read_text()
    where = str(directory / "main.tf")
    for name, option in (("peer_port", "--peer-listen"), ("client_port", "--client-listen")):
        expected = f"{option} 0.0.0.0:{local.get(name)}"
        failures.check(expected in unit, where, f"custody-parent.service does not say {expected!r}")
    for path, _, host in resources(documents, "aws_instance"):
        where = f"{path}: aws_instance"
        options = host.get("metadata_options", [{}])[0]
        failures.check(options.get("http_tokens") == "required", where, "IMDSv2 is not required")
        failures.check(host.get("enclave_options", [{}])[0].get("enabled") is True, where, "Nitro Enclaves not enabled")


def main():
    if len(sys.argv) != 2:
        print("usage: check.py INFRA_DIR", file=sys.stderr)
        return 2
    root = Path(sys.argv[1])
    failures = Failures()
    parsed = parse_all(root, failures)
    for directory, documents in parsed.items():
        check_interface(documents, failures)
        if directory.name == "gcp":
            check_gcp(directory, documents, failures)
        elif directory.name == "nitro":
            check_nitro(directory, documents, failures)
    for required in ("gcp", "nitro"):
        failures.check(root / required in parsed, str(root / required), "no Terraform parsed")
    count = sum(len(documents) for documents in parsed.values())
    for item in failures.items:
        print(f"FAIL {item}")
    print(f"{count} Terraform files parsed, {len(failures.items)} failed checks")
    return 1 if failures.items else 0


if __name__ == "__main__":
    sys.exit(main())
