"""Modules that build and start images of their own run with a container provider only, where an
engine is at hand (CI starts one); the local runs do not collect them. The cluster suites run
Orthanc nodes as local processes (and Debian's orthanc-postgresql): the container runs do not
collect them."""

from integration.harness.providers import choose_provider_name

CONTAINER_ONLY = ["test_example_deployment.py"]
LOCAL_ONLY = [
    "test_cluster_harness.py",
    "test_cluster_dicom_events.py",
    "test_cluster_thumbnail_private_tags.py",
]
collect_ignore = LOCAL_ONLY if choose_provider_name() in ("docker", "compose") else CONTAINER_ONLY
