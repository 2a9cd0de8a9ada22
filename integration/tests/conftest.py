"""Modules that build and start images of their own run with a container provider only, where an
engine is at hand (CI starts one); the local runs do not collect them."""

from integration.harness.providers import choose_provider_name

CONTAINER_ONLY = ["test_example_deployment.py"]
collect_ignore = [] if choose_provider_name() in ("docker", "compose") else CONTAINER_ONLY
