"""Where clients nobody on this project wrote (AWS's SDK examples, the AWS CLI, the JS
SDK) found the local HealthImaging answering differently from the service: each point
held over HTTP by a real client."""

from __future__ import annotations

import copy
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    USDOPPLER,
    aws_cli,
    blob,
    make_client,
    metadata,
    put_document,
    settle,
    wait_for,
)

from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.server import LocalHealthImaging
from reconciler.emulator.store import ADDED_COLUMNS, Store

SERIES = next(iter(USDOPPLER["Study"]["Series"]))
SOPS = list(USDOPPLER["Study"]["Series"][SERIES]["Instances"])


def active_datastore(client: Any, name: str) -> str:
    datastore_id: str = client.create_datastore(datastoreName=name)["datastoreId"]
    wait_for(
        lambda: (
            client.get_datastore(datastoreId=datastore_id)["datastoreProperties"]["datastoreStatus"]
            == "ACTIVE"
        )
    )
    return datastore_id


def test_a_datastore_whose_image_sets_were_deleted_can_be_deleted_at_once(
    local: Any, client: Any, datastore: str
) -> None:
    """No read of the image sets between their deletes and the data store's (AWS's
    Python example clean-up): deletes that are due count as done."""
    local.configure(lock_hold_seconds=0.0)  # every delete is due the moment it is made
    for image_set in ("a" * 32, "b" * 32):
        put_document(local, datastore, USDOPPLER, image_set)
        client.delete_image_set(datastoreId=datastore, imageSetId=image_set)
    result = aws_cli(local.url, "medical-imaging", "delete-datastore", "--datastore-id", datastore)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["datastoreStatus"] == "DELETING"


def test_a_datastore_with_an_image_set_still_deleting_is_not_deleted(
    local: Any, client: Any, datastore: str
) -> None:
    local.configure(lock_hold_seconds=30.0)
    put_document(local, datastore, USDOPPLER, "a" * 32)
    client.delete_image_set(datastoreId=datastore, imageSetId="a" * 32)
    with pytest.raises(client.exceptions.ConflictException, match="still has 1 image set"):
        client.delete_datastore(datastoreId=datastore)


def test_a_primary_in_another_datastore_does_not_stop_a_promotion(
    local: Any, client: Any, datastore: str
) -> None:
    """Primaries are per data store: reconciler's --replace-primary copies and promotes
    in one data store while another holds a primary of the same study."""
    other = active_datastore(client, "other")
    put_document(local, other, USDOPPLER, "e" * 32, primary=True)
    put_document(local, datastore, USDOPPLER, "f" * 32, primary=False)
    promoted = client.copy_image_set(
        datastoreId=datastore,
        sourceImageSetId="f" * 32,
        promoteToPrimary=True,
        copyImageSetInformation={"sourceImageSet": {"latestVersionId": "1"}},
    )["destinationImageSetProperties"]["imageSetId"]
    assert settle(client, datastore, promoted)["isPrimary"] is True
    # In the same data store a second primary of the study is still refused.
    with pytest.raises(client.exceptions.ConflictException, match="already the primary"):
        client.copy_image_set(
            datastoreId=datastore,
            sourceImageSetId="f" * 32,
            promoteToPrimary=True,
            copyImageSetInformation={"sourceImageSet": {"latestVersionId": "1"}},
        )


def test_removing_an_instance_from_a_primary_image_set_needs_no_force(
    local: Any, client: Any, datastore: str
) -> None:
    """As AWS's examples send it: {"Instances": {"<sop>": {}}} without force."""
    put_document(local, datastore, USDOPPLER, "d" * 32, primary=True)
    removal = {"Study": {"Series": {SERIES: {"Instances": {SOPS[0]: {}}}}}}
    client.update_image_set_metadata(
        datastoreId=datastore,
        imageSetId="d" * 32,
        latestVersionId="1",
        updateImageSetMetadataUpdates={"DICOMUpdates": {"removableAttributes": blob(removal)}},
    )
    assert settle(client, datastore, "d" * 32)["imageSetWorkflowStatus"] == "UPDATED"
    left = metadata(client, datastore, "d" * 32)["Study"]["Series"][SERIES]["Instances"]
    assert sorted(left) == sorted(SOPS[1:])
    # A whole series of a primary image set still needs force (a Series-level change).
    two_series = copy.deepcopy(USDOPPLER)
    two_series["Study"]["DICOM"]["StudyInstanceUID"] = "1.2.840.99"
    two_series["Study"]["Series"]["1.2.3"] = copy.deepcopy(two_series["Study"]["Series"][SERIES])
    put_document(local, datastore, two_series, "9" * 32, primary=True)
    series_removal = {"Study": {"Series": {"1.2.3": {}}}}
    with pytest.raises(client.exceptions.ValidationException, match="requires force"):
        client.update_image_set_metadata(
            datastoreId=datastore,
            imageSetId="9" * 32,
            latestVersionId="1",
            updateImageSetMetadataUpdates={
                "DICOMUpdates": {"removableAttributes": blob(series_removal)}
            },
        )


def test_validation_messages_are_worded_as_the_service_words_them(local: Any, client: Any) -> None:
    """AWS's get-datastore.integration.test.js asserts this message verbatim."""
    with pytest.raises(client.exceptions.ValidationException) as refused:
        client.get_datastore(datastoreId="DATASTORE_ID")
    assert refused.value.response["Error"]["Message"] == (
        "1 validation error detected: Value 'DATASTORE_ID' at 'datastoreId' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: [0-9a-z]{32}"
    )
    # Every violation is listed, nested members by their path, list items 1-based.
    with pytest.raises(client.exceptions.ValidationException) as refused:
        client.search_image_sets(
            datastoreId="a" * 32,
            maxResults=50,
            searchCriteria={
                "filters": [
                    {"values": [{"DICOMStudyId": "x" * 513}], "operator": "EQUAL"},
                    {"values": [{"DICOMAccessionNumber": "y" * 513}], "operator": "EQUAL"},
                ]
            },
        )
    assert refused.value.response["Error"]["Message"] == (
        "2 validation errors detected: Value '" + "x" * 513 + "' at 'searchCriteria.filters.1."
        "member.values.1.member.DICOMStudyId' failed to satisfy constraint: Member must have "
        "length less than or equal to 512; Value '" + "y" * 513 + "' at 'searchCriteria.filters."
        "2.member.values.1.member.DICOMAccessionNumber' failed to satisfy constraint: Member "
        "must have length less than or equal to 512"
    )
    args = ("--datastore-name", "bad name", "--lossless-storage-format", "PNG")
    result = aws_cli(local.url, "medical-imaging", "create-datastore", *args)
    assert result.returncode != 0
    assert (
        "2 validation errors detected: Value 'bad name' at 'datastoreName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: [A-Za-z0-9._/#-]+; "
        "Value 'PNG' at 'losslessStorageFormat' failed to satisfy constraint: Member must "
        "satisfy enum value set: [HTJ2K, JPEG_2000_LOSSLESS]"
    ) in result.stderr


def test_a_database_file_from_before_the_new_columns_is_upgraded(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite"
    Store(db).close()
    conn = sqlite3.connect(db)
    for table, column, _ in ADDED_COLUMNS:  # as a file written before them looks
        conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    conn.commit()
    conn.close()
    with LocalHealthImaging(EmulatorConfig(db_path=db, quotas_enabled=False)) as local:
        client = make_client(local.url)
        datastore = active_datastore(client, "upgraded")
        assert client.get_datastore(datastoreId=datastore)["datastoreProperties"]
    conn = sqlite3.connect(db)
    for table, column, _ in ADDED_COLUMNS:
        assert column in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    conn.close()
