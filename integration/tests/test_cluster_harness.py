"""The cluster of the harness: Orthanc nodes on one PostgreSQL database and one storage folder."""

from __future__ import annotations

import uuid

import pytest
from pydicom.uid import generate_uid

from integration.conftest import ClusterFactory
from integration.harness.postgres import PostgresServer, connect
from orthanc_fake.dicom import make_instance

pytestmark = pytest.mark.e2e


def dicom(study: str, series: str, patient: str) -> bytes:
    instance = make_instance(patient_id=patient, study_uid=study, series_uid=series)
    return instance if isinstance(instance, bytes) else bytes(instance)


def database_names(postgres: PostgresServer) -> set[str]:
    connection = connect(postgres.host, postgres.port)
    try:
        return {row[0] for row in connection.run("SELECT datname FROM pg_database")}
    finally:
        connection.close()


def test_nodes_share_the_index_the_storage_and_the_change_log(
    cluster_factory: ClusterFactory, postgres: PostgresServer
) -> None:
    cluster = cluster_factory(nodes=2)
    first, second = cluster.nodes
    assert first.http_port != second.http_port and first.dicom_port != second.dicom_port
    assert first.config["PostgreSQL"]["Database"] == second.config["PostgreSQL"]["Database"]
    assert first.config["PostgreSQL"]["Database"] in database_names(postgres)
    assert first.config["PostgreSQL"]["Lock"] is False and first.config["CheckRevisions"] is True
    assert first.config["StorageDirectory"] == second.config["StorageDirectory"]
    assert first.config["IndexDirectory"] != second.config["IndexDirectory"]
    study, series, patient = generate_uid(), generate_uid(), f"CL-{uuid.uuid4().hex[:8]}"

    stored = first.upload_file(dicom(study, series, patient))
    # Stored through node 0, read through node 1: same index, same files.
    assert (
        second.client.get_json(f"/instances/{stored['ID']}")["ParentSeries"]
        == (stored["ParentSeries"])
    )
    assert second.client.get(f"/instances/{stored['ID']}/file").content[:132][-4:] == b"DICM"
    assert first.client.get_json("/changes?last") == second.client.get_json("/changes?last")
    # One global property space: what one node writes, the other reads.
    second.client.delete(f"/instances/{stored['ID']}").raise_for_status()
    assert first.client.get(f"/instances/{stored['ID']}").status_code == 404


def test_three_nodes_and_the_database_is_dropped_afterwards(
    cluster_factory: ClusterFactory, postgres: PostgresServer
) -> None:
    cluster = cluster_factory(nodes=3)
    assert len({node.http_port for node in cluster.nodes}) == 3
    names = [node.client.get_json("/system")["Name"] for node in cluster.nodes]
    assert names == ["node0", "node1", "node2"]
    database = cluster.database
    cluster.stop()
    postgres.drop_database(database)
    assert database.name not in database_names(postgres)
