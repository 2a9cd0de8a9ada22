"""What the container path decides, checked without a Docker engine: pinned images, environments,
Orthanc's generated configuration, the provider choice, and the files around it (compose files,
workflows, the AsyncAPI document) parse and agree with the code.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from integration.harness import containers, flavours
from integration.harness.compose import HostPorts, compose_command, compose_variant
from integration.harness.orthanc import PLUGINS, OrthancServer
from integration.harness.processes import HarnessError
from integration.harness.providers import PROVIDERS, choose_provider_name
from orthanc_dicom_events.__about__ import __version__ as dicom_events_version
from orthanc_dicom_events.events import EventType
from tools.asyncapi import spec_schema
from tools.release import check_tag

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILES = [
    REPO / "integration" / "docker-compose.yml",
    REPO / "examples" / "docker-compose.yml",
]
WORKFLOWS = REPO / ".github" / "workflows"
ASYNCAPI = REPO / "packages" / "dicom-events" / "asyncapi.yaml"
RELEASED = {
    "orthanc-dicom-events": "packages/dicom-events",
    "orthanc-series-private-tags": "packages/series-private-tags",
    "orthanc-series-thumbnail": "packages/series-thumbnail",
    "orthanc-plugins-compose": "tools/composer",
}
PINNED = re.compile(r"^[\w./-]+:\d+\.\d+\.\d+[\w.-]*$")

# -- images --------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", sorted(containers.IMAGE_VARIABLES))
def test_images_are_pinned_to_a_full_version(service: str) -> None:
    image = containers.image_for(service, environ={})
    assert PINNED.match(image), image
    assert "latest" not in image


def test_localstack_stays_on_4x_and_the_orthanc_image_is_orthancteam() -> None:
    assert containers.LOCALSTACK_IMAGE.startswith("localstack/localstack:4.")
    assert containers.ORTHANC_IMAGE.startswith("orthancteam/orthanc:")


def test_an_environment_variable_overrides_an_image() -> None:
    environ = {"HARNESS_LOCALSTACK_IMAGE": "localstack/localstack:2026.3.0"}
    assert containers.image_for("localstack", environ) == "localstack/localstack:2026.3.0"
    assert containers.image_for("localstack", {"HARNESS_LOCALSTACK_IMAGE": " "}) == (
        containers.LOCALSTACK_IMAGE
    )


def test_compose_files_and_the_example_dockerfile_use_the_pinned_images() -> None:
    images = {
        name: service["image"]
        for path in COMPOSE_FILES
        for name, service in yaml.safe_load(path.read_text())["services"].items()
        if "image" in service
    }
    assert images == {
        "rabbitmq": containers.RABBITMQ_IMAGE,
        "localstack": containers.LOCALSTACK_IMAGE,
    }
    dockerfile = (REPO / "examples" / "Dockerfile").read_text()
    assert f"ARG ORTHANC_IMAGE={containers.ORTHANC_IMAGE}\n" in dockerfile


# -- environments --------------------------------------------------------------------------------


def test_localstack_gets_the_auth_token_only_when_set() -> None:
    without = containers.localstack_container_env({})
    assert "LOCALSTACK_AUTH_TOKEN" not in without
    assert without["SERVICES"] == "sns,sqs"
    assert without["LOCALSTACK_HOST"] == "localstack:4566"
    with_token = containers.localstack_container_env({"LOCALSTACK_AUTH_TOKEN": "ls-123"})
    assert with_token["LOCALSTACK_AUTH_TOKEN"] == "ls-123"


def test_rabbitmq_uses_an_account_that_may_connect_from_other_hosts() -> None:
    env = containers.rabbitmq_container_env()
    assert env["RABBITMQ_DEFAULT_USER"] != "guest"
    assert env["RABBITMQ_DEFAULT_PASS"]


def test_orthanc_container_environment_carries_the_whole_configuration() -> None:
    config = {"Name": "x", "DicomEvents": {"Broker": {"Type": "rabbitmq"}}}
    env = containers.orthanc_container_env(
        config, {"AWS_ACCESS_KEY_ID": "test"}, entry_path="/w/composed/__init__.py"
    )
    assert json.loads(env["ORTHANC_JSON"]) == config
    assert env["PYTHON_PLUGIN_ENABLED"] == "true"
    # Replaces the image's own entry (for all the plugins) instead of competing with the JSON.
    assert env["ORTHANC__PYTHON__PATH"] == "/w/composed/__init__.py"
    assert env["AWS_ACCESS_KEY_ID"] == "test"
    assert env["TCP_NODELAY"] == "1"
    without_entry = containers.orthanc_container_env(config)
    assert without_entry["PYTHON_PLUGIN_ENABLED"] == "false"
    assert "ORTHANC__PYTHON__PATH" not in without_entry


# -- Orthanc's configuration ---------------------------------------------------------------------


def test_plugin_4_uses_python_script_and_later_plugins_the_python_section() -> None:
    assert containers.python_entry_settings("/e.py", plugin_version=(4, 0)) == {
        "PythonScript": "/e.py"
    }
    assert containers.python_entry_settings("/e.py", plugin_version=(7, 1)) == {
        "Python": {"Path": "/e.py", "AllowThreads": True}
    }
    with pytest.raises(HarnessError):
        containers.python_entry_settings("/e.py", plugin_version=(3, 9))


def test_container_configuration_for_plugin_7_on_a_private_network(tmp_path: Path) -> None:
    config = containers.container_orthanc_config(
        {"HttpPort": 18042, "StableAge": 1, "DicomEvents": {"Source": "s"}},
        workdir=tmp_path,
        entry_path="/work/composed/__init__.py",
        name="c0",
    )
    assert config["Python"] == {"Path": "/work/composed/__init__.py", "AllowThreads": True}
    assert "PythonScript" not in config
    assert "Plugins" not in config  # the image loads its own plugin folder
    # The host port is Docker's business; inside, Orthanc keeps its usual ports.
    assert (config["HttpPort"], config["DicomPort"]) == (8042, 4242)
    assert config["RemoteAccessAllowed"] is True
    assert config["AuthenticationEnabled"] is False
    assert config["StableAge"] == 1
    assert config["DicomEvents"] == {"Source": "s"}
    assert config["StorageDirectory"] == str(tmp_path / "storage")


def test_container_configuration_on_the_hosts_network(tmp_path: Path) -> None:
    config = containers.container_orthanc_config(
        {"HttpPort": 18042},
        workdir=tmp_path,
        entry_path="/e.py",
        name="c0",
        network="host",
        ports=(21000, 21001),
        plugin_version=(5, 0),
    )
    # Orthanc itself listens on the free host ports and, like the local one, only for loopback.
    assert (config["HttpPort"], config["DicomPort"]) == (21000, 21001)
    assert config["RemoteAccessAllowed"] is False
    assert config["Python"] == {"Path": "/e.py", "AllowThreads": True}


def test_local_configuration_for_plugin_4_uses_python_script(tmp_path: Path) -> None:
    server = OrthancServer(
        tmp_path, plugins=["series-thumbnail"], entry="standalone", flavour="debian-12"
    )
    server._write_config()
    written = json.loads(server.config_path.read_text())
    assert written["PythonScript"].endswith("orthanc_series_thumbnail/orthanc_entry.py")
    assert "Python" not in written


def test_a_container_shares_the_folder_of_its_workdir(tmp_path: Path) -> None:
    # A test's tmp_path: its Orthancs' workdirs, and the folders it names in configurations.
    assert containers.shared_folder(tmp_path / "orthanc-0") == tmp_path
    assert containers.shared_folder(Path("/orthanc")) == Path("/orthanc")


def test_a_standalone_entry_is_the_plugins_own_file_in_the_images_venv() -> None:
    entry = containers.standalone_entry_in_image("series-private-tags")
    assert str(entry) == (
        "/opt/orthanc-plugins/site-packages/orthanc_series_private_tags/orthanc_entry.py"
    )
    # examples/Dockerfile makes that folder, and composes with it.
    dockerfile = (REPO / "examples" / "Dockerfile").read_text()
    assert "/opt/orthanc-plugins/site-packages" in dockerfile
    assert "--site-packages /opt/orthanc-plugins/site-packages" in dockerfile


def test_the_plugin_version_comes_from_the_images_label() -> None:
    assert containers.plugin_version_of({"orthanc.python-plugin.version": "5.0"}) == (5, 0)
    assert containers.plugin_version_of({}) == containers.ORTHANC_IMAGE_PLUGIN_VERSION


@pytest.mark.parametrize(
    ("environ", "pinned", "expected"),
    [
        ({"HARNESS_ORTHANC_IMAGE": "my/orthanc:1"}, False, ("image", "my/orthanc:1")),
        ({"HARNESS_FLAVOUR": "debian-13"}, True, ("flavour", "debian-13")),
        ({}, True, ("image", containers.ORTHANC_IMAGE)),
        ({}, False, ("flavour", "debian-sid")),
        ({"HARNESS_FLAVOUR": "debian-12"}, False, ("flavour", "debian-sid")),
    ],
)
def test_orthanc_base_image_choice(
    environ: dict[str, str], pinned: bool, expected: tuple[str, str]
) -> None:
    assert containers.choose_orthanc_base(environ, lambda: pinned) == expected


def test_image_kind_and_network_mode_settings() -> None:
    assert containers.image_kind({}) == "orthancteam"
    assert containers.image_kind({"HARNESS_ORTHANC_IMAGE_KIND": "Debian"}) == "debian"
    with pytest.raises(HarnessError):
        containers.image_kind({"HARNESS_ORTHANC_IMAGE_KIND": "alpine"})
    assert containers.network_mode({}, lambda: True) == "private"
    assert containers.network_mode({}, lambda: False) == "host"
    assert containers.network_mode({"HARNESS_DOCKER_NETWORK": "host"}, lambda: True) == "host"
    with pytest.raises(HarnessError):
        containers.network_mode({"HARNESS_DOCKER_NETWORK": "bridge"}, lambda: True)


def test_every_plugin_of_the_harness_is_built_into_the_image() -> None:
    # The image gets the wheels flavours.build_wheels makes (images.plugins_image).
    sources = {Path(source).name for source in flavours.WHEEL_SOURCES}
    assert set(PLUGINS) <= sources


def test_the_examples_dockerfile_builds_on_either_kind_of_base() -> None:
    dockerfile = (REPO / "examples" / "Dockerfile").read_text()
    assert "ARG ORTHANC_IMAGE_KIND=orthancteam\n" in dockerfile
    assert "FROM kind-${ORTHANC_IMAGE_KIND}\n" in dockerfile
    for kind in ("orthancteam", "debian"):
        assert f"AS kind-{kind}\n" in dockerfile


# -- provider choice -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "engine", "expected"),
    [
        ("", True, "docker"),
        ("", False, "local"),
        ("auto", True, "docker"),
        ("AUTO", False, "local"),
        ("local", True, "local"),
        ("docker", False, "docker"),
        ("external", True, "external"),
    ],
)
def test_provider_choice(setting: str, engine: bool, expected: str) -> None:
    assert choose_provider_name({"HARNESS_PROVIDER": setting}, lambda: engine) == expected


def test_provider_choice_asks_the_engine_only_for_auto() -> None:
    def no_call() -> bool:
        raise AssertionError("the engine was asked although the provider is forced")

    assert choose_provider_name({"HARNESS_PROVIDER": "local"}, no_call) == "local"


def test_an_unknown_provider_is_an_error() -> None:
    with pytest.raises(HarnessError, match="kubernetes"):
        choose_provider_name({"HARNESS_PROVIDER": "kubernetes"}, lambda: True)


def test_every_provider_name_is_registered() -> None:
    assert set(PROVIDERS) == {"local", "docker", "external", "compose"}


def test_external_provider_needs_both_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RABBITMQ_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    provider = PROVIDERS["external"]()
    with pytest.raises(HarnessError, match="RABBITMQ_URL"):
        provider.rabbitmq(Path("/nonexistent"))
    with pytest.raises(HarnessError, match="AWS_ENDPOINT_URL"):
        provider.sns_kinds()


def test_no_docker_engine_answers_on_a_missing_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert containers.docker_engine_answers(timeout=1) is False


# -- compose files -------------------------------------------------------------------------------


def _compose_client_works() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, timeout=30, check=False
    )
    return probe.returncode == 0


def _vendored_schema(name: str) -> dict[str, Any]:
    """A schema check-jsonschema ships (offline): compose-spec, github-workflows, ..."""
    from check_jsonschema.builtin_schemas import get_builtin_schema

    schema: dict[str, Any] = get_builtin_schema(f"vendor.{name}")
    return schema


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.parent.name)
def test_compose_file_is_valid(path: Path) -> None:
    if _compose_client_works():
        result = subprocess.run(
            ["docker", "compose", "-f", str(path), "config", "--quiet"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
    document = yaml.safe_load(path.read_text())
    jsonschema.validate(document, _vendored_schema("compose-spec"))
    for name, service in document["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every address"
        assert "healthcheck" in service, f"{name} has no health check (`up --wait` needs one)"


def test_example_compose_configures_orthanc_through_environment_variables() -> None:
    document = yaml.safe_load((REPO / "examples" / "docker-compose.yml").read_text())
    environment: dict[str, str] = document["services"]["orthanc"]["environment"]
    assert all(k.startswith(("ORTHANC__", "AWS_")) for k in environment), environment
    # JSON values must parse once compose has replaced ${...}.
    broker = environment["ORTHANC__DICOM_EVENTS__BROKER"].replace(
        "${EVENTS_BROKER:-rabbitmq}", "rabbitmq"
    )
    assert json.loads(broker)["RabbitConfig"]["URL"].startswith("amqp://")
    json.loads(environment["ORTHANC__DICOM_EVENTS__EVENTS"])
    assert document["services"]["orthanc"]["build"] == "."


# -- workflows -----------------------------------------------------------------------------------


def _workflow(path: Path) -> dict[str, Any]:
    document: dict[Any, Any] = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as the boolean true.
    if True in document:
        document["on"] = document.pop(True)
    return document


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yml")), ids=lambda p: p.name)
def test_workflow_is_valid(path: Path) -> None:
    workflow = _workflow(path)
    jsonschema.validate(workflow, _vendored_schema("github-workflows"))
    assert {"name", "on", "jobs", "permissions"} <= set(workflow)
    for name, job in workflow["jobs"].items():
        assert "runs-on" in job and job["steps"], name
        assert job.get("timeout-minutes", 360) <= 20, f"{name} may run for hours"


def test_unit_tests_run_on_every_supported_python() -> None:
    unit = _workflow(WORKFLOWS / "ci.yml")["jobs"]["unit"]
    assert unit["strategy"]["matrix"]["python-version"] == ["3.11", "3.12", "3.13", "3.14"]


def test_e2e_workflow_runs_the_suites_on_containers() -> None:
    workflow = _workflow(WORKFLOWS / "e2e.yml")
    job = workflow["jobs"]["containers"]
    assert job["env"]["HARNESS_PROVIDER"] == "docker"
    commands = " ".join(step.get("run", "") for step in job["steps"])
    assert "-p integration.no_skips integration" in commands


def test_one_release_workflow_builds_and_publishes_the_tagged_distribution() -> None:
    assert sorted(path.name for path in WORKFLOWS.glob("release*.yml")) == ["release.yml"]
    workflow = _workflow(WORKFLOWS / "release.yml")
    assert workflow["on"] == {"push": {"tags": ["orthanc-*-v*"]}}
    build, publish = workflow["jobs"]["build"], workflow["jobs"]["publish"]
    commands = [step.get("run", "") for step in build["steps"]]
    assert 'python tools/release/check_tag.py "$GITHUB_REF_NAME"' in commands
    hatch_build = next(step for step in build["steps"] if step.get("run") == "hatch build")
    assert hatch_build["working-directory"] == "${{ steps.tag.outputs.directory }}"
    assert publish["permissions"] == {"id-token": "write"}  # trusted publishing, no token
    assert publish["needs"] == "build"
    uses = [step.get("uses", "") for step in publish["steps"]]
    assert any(u.startswith("pypa/gh-action-pypi-publish@") for u in uses)


def test_the_release_workflow_maps_exactly_the_published_distributions() -> None:
    assert check_tag.RELEASED == RELEASED
    for directory in RELEASED.values():
        assert (REPO / directory / "pyproject.toml").is_file()


# -- AsyncAPI ------------------------------------------------------------------------------------


def _asyncapi() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(ASYNCAPI.read_text())
    return document


def test_asyncapi_document_validates_against_the_official_schema() -> None:
    errors = spec_schema.validation_errors(_asyncapi(), spec_schema.load_schema())
    assert errors == []


def test_asyncapi_validation_catches_an_invalid_document() -> None:
    document = _asyncapi()
    document["operations"]["publishToSns"]["action"] = "publish"  # AsyncAPI 2's verb
    assert spec_schema.validation_errors(document, spec_schema.load_schema())


def test_asyncapi_describes_every_event_type_with_its_shipped_schema() -> None:
    document = _asyncapi()
    messages = document["components"]["messages"]
    assert {message["name"] for message in messages.values()} == {str(t) for t in EventType}
    for message in messages.values():
        reference = message["payload"]["schema"]["$ref"]
        assert (ASYNCAPI.parent / reference).resolve().is_file(), reference
        assert reference.endswith(f"/{message['name']}.json")


def test_asyncapi_channels_route_each_type_on_both_brokers() -> None:
    document = _asyncapi()
    rabbit = {
        channel["address"]
        for channel in document["channels"].values()
        if channel.get("bindings", {}).get("amqp", {}).get("is") == "routingKey"
    }
    assert rabbit == {str(t) for t in EventType}
    sns = document["channels"]["snsTopic"]
    assert len(sns["messages"]) == len(EventType)
    assert "`type`" in sns["description"]


def test_asyncapi_version_is_the_package_version() -> None:
    assert _asyncapi()["info"]["version"] == dicom_events_version


# -- compose files on this engine ----------------------------------------------------------------

HOST_PORTS = {
    "orthanc": HostPorts({8042: 21001, 4242: 21002}),
    "rabbitmq": HostPorts({5672: 21003, 15672: 21005}, {"dist": 21004, "epmd": 21006}),
    "localstack": HostPorts({4566: 21007}),
}


def _compose_document(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((REPO / name / "docker-compose.yml").read_text())
    return document


def test_compose_variant_on_a_private_network_only_drops_the_project_name() -> None:
    document = _compose_document("integration")
    variant = compose_variant(document, network="private", images={"rabbitmq": "local/rmq:1"})
    assert "name" not in variant  # docker-compose 1.29 refuses it
    assert variant["services"]["rabbitmq"]["image"] == "local/rmq:1"
    assert variant["services"]["rabbitmq"]["ports"] == document["services"]["rabbitmq"]["ports"]
    assert variant["services"]["localstack"] == document["services"]["localstack"]


def test_compose_variant_on_the_hosts_network_listens_on_loopback_ports() -> None:
    document = _compose_document("examples")
    variant = compose_variant(
        document,
        network="host",
        build_args={"orthanc": {"ORTHANC_IMAGE": "local/sid:1", "ORTHANC_IMAGE_KIND": "debian"}},
        host_ports=HOST_PORTS,
    )
    services = variant["services"]
    for service in services.values():
        assert service["network_mode"] == "host"
        assert "ports" not in service  # 1.29 refuses published ports on the host's network
    orthanc = services["orthanc"]
    assert orthanc["build"] == {
        "context": ".",
        "args": {"ORTHANC_IMAGE": "local/sid:1", "ORTHANC_IMAGE_KIND": "debian"},
        "network": "host",
    }
    environment = orthanc["environment"]
    assert (environment["ORTHANC__HTTP_PORT"], environment["ORTHANC__DICOM_PORT"]) == (
        "21001",
        "21002",
    )
    assert environment["ORTHANC__REMOTE_ACCESS_ALLOWED"] == "false"
    broker = json.loads(environment["ORTHANC__DICOM_EVENTS__BROKER"].replace("${", "{"))
    assert broker["RabbitConfig"]["URL"] == "amqp://orthanc:orthanc@127.0.0.1:21003/%2F"
    assert broker["SNSConfig"]["EndpointUrl"] == "http://127.0.0.1:21007"
    assert "localhost:21001/dicom-events/status" in " ".join(orthanc["healthcheck"]["test"])
    rabbitmq = services["rabbitmq"]["environment"]
    assert rabbitmq["RABBITMQ_NODE_IP_ADDRESS"] == "127.0.0.1"
    assert (rabbitmq["RABBITMQ_NODE_PORT"], rabbitmq["RABBITMQ_DIST_PORT"]) == ("21003", "21004")
    assert (rabbitmq["ERL_EPMD_PORT"], rabbitmq["RABBITMQ_MANAGEMENT_PORT"]) == ("21006", "21005")
    assert services["localstack"]["environment"]["GATEWAY_LISTEN"] == "127.0.0.1:21007"


def test_compose_variant_on_the_hosts_network_needs_every_services_ports() -> None:
    with pytest.raises(HarnessError, match="localstack"):
        compose_variant(
            _compose_document("integration"),
            network="host",
            host_ports={"rabbitmq": HOST_PORTS["rabbitmq"]},
        )


def test_the_compose_command_is_debians_docker_compose_unless_told() -> None:
    assert compose_command({"HARNESS_COMPOSE_COMMAND": "docker compose"}) == ["docker", "compose"]
