"""UpdateImageSetMetadata through a real boto3 client: every rule of AHI.md."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import USDOPPLER, blob, metadata, put_document, raw_request, settle

ISID = "1" * 32
SERIES = next(iter(USDOPPLER["Study"]["Series"]))
INSTANCES = USDOPPLER["Study"]["Series"][SERIES]["Instances"]
SOP = next(iter(INSTANCES))
PRIVATE = next(k for k in INSTANCES[SOP]["DICOM"] if k[0].isdigit() and k.endswith("1090"))


@pytest.fixture
def image_set(local: Any, datastore: str) -> str:
    return put_document(local, datastore, USDOPPLER, ISID)


def update(client: Any, datastore: str, latest: str, *, force: bool = False,
           updatable: dict[str, Any] | None = None, removable: dict[str, Any] | None = None,
           **extra: Any) -> Any:  # fmt: skip
    dicom: dict[str, bytes] = {}
    if updatable is not None:
        dicom["updatableAttributes"] = blob(updatable)
    if removable is not None:
        dicom["removableAttributes"] = blob(removable)
    return client.update_image_set_metadata(
        datastoreId=datastore, imageSetId=ISID, latestVersionId=latest, force=force,
        updateImageSetMetadataUpdates={"DICOMUpdates": dicom}, **extra,
    )  # fmt: skip


def test_update_locks_then_settles_with_a_new_version(
    local: Any, client: Any, datastore: str, image_set: str
) -> None:
    local.configure(lock_hold_seconds=3.0)  # long enough to look while LOCKED on a busy CI
    response = update(
        client, datastore, "1", updatable={"Patient": {"DICOM": {"PatientName": "DOE^JANE"}}}
    )
    assert response["latestVersionId"] == "2"
    assert response["imageSetState"] == "LOCKED"
    assert response["imageSetWorkflowStatus"] == "UPDATING"
    # While LOCKED the new document is not visible yet.
    assert metadata(client, datastore, ISID)["Patient"]["DICOM"]["PatientName"] == "US Echo"
    final = settle(client, datastore, ISID)
    assert (final["versionId"], final["imageSetState"], final["imageSetWorkflowStatus"]) == (
        "2", "ACTIVE", "UPDATED")  # fmt: skip
    assert metadata(client, datastore, ISID)["Patient"]["DICOM"]["PatientName"] == "DOE^JANE"
    assert metadata(client, datastore, ISID, "1")["Patient"]["DICOM"]["PatientName"] == "US Echo"


def test_write_while_locked_is_a_conflict(
    local: Any, client: Any, datastore: str, image_set: str
) -> None:
    local.configure(lock_hold_seconds=30.0)  # still LOCKED however busy the machine is
    update(client, datastore, "1", updatable={"Study": {"DICOM": {"StudyDescription": "A"}}})
    with pytest.raises(client.exceptions.ConflictException, match="locked"):
        update(client, datastore, "2", updatable={"Study": {"DICOM": {"StudyDescription": "B"}}})


def test_stale_latest_version_is_a_conflict(client: Any, datastore: str, image_set: str) -> None:
    update(client, datastore, "1", updatable={"Study": {"DICOM": {"StudyDescription": "A"}}})
    settle(client, datastore, ISID)
    with pytest.raises(client.exceptions.ConflictException, match="not the latest version"):
        update(client, datastore, "1", updatable={"Study": {"DICOM": {"StudyDescription": "B"}}})


def test_revert_creates_a_new_version_equal_to_the_old(
    client: Any, datastore: str, image_set: str
) -> None:
    update(client, datastore, "1", updatable={"Study": {"DICOM": {"StudyDescription": "A"}}})
    settle(client, datastore, ISID)
    update(client, datastore, "2", updatable={"Study": {"DICOM": {"StudyDescription": "B"}}})
    settle(client, datastore, ISID)
    response = client.update_image_set_metadata(
        datastoreId=datastore, imageSetId=ISID, latestVersionId="3",
        updateImageSetMetadataUpdates={"revertToVersionId": "1"},
    )  # fmt: skip
    assert response["latestVersionId"] == "4"
    settle(client, datastore, ISID)
    assert metadata(client, datastore, ISID) == metadata(client, datastore, ISID, "1")


def test_revert_with_include_study_image_sets_is_refused(
    client: Any, datastore: str, image_set: str
) -> None:
    with pytest.raises(client.exceptions.ValidationException, match="revert"):
        client.update_image_set_metadata(
            datastoreId=datastore, imageSetId=ISID, latestVersionId="1",
            includeStudyImageSets=True, updateImageSetMetadataUpdates={"revertToVersionId": "1"},
        )  # fmt: skip


def test_payload_over_the_quota_is_402_and_over_the_model_limit_400(
    client: Any, datastore: str, image_set: str
) -> None:
    big = {"Study": {"DICOM": {"StudyDescription": "X" * 12_000}}}
    with pytest.raises(client.exceptions.ServiceQuotaExceededException, match="maximum payload"):
        update(client, datastore, "1", updatable=big)
    huge = {"Study": {"DICOM": {"StudyDescription": "X" * 31_000}}}
    with pytest.raises(
        client.exceptions.ValidationException, match="length less than or equal to 30000"
    ):
        update(client, datastore, "1", updatable=huge)


def test_removal_needs_the_current_value(client: Any, datastore: str, image_set: str) -> None:
    with pytest.raises(client.exceptions.ValidationException, match="does not match"):
        update(client, datastore, "1", removable={"Study": {"DICOM": {"StudyDescription": "nope"}}})
    update(
        client, datastore, "1", removable={"Study": {"DICOM": {"StudyDescription": "US Dopler"}}}
    )
    settle(client, datastore, ISID)
    assert "StudyDescription" not in metadata(client, datastore, ISID)["Study"]["DICOM"]


def test_attribute_at_the_wrong_level_is_rejected(
    client: Any, datastore: str, image_set: str
) -> None:
    with pytest.raises(
        client.exceptions.ValidationException, match="PatientName belongs to the Patient level"
    ):
        update(client, datastore, "1", updatable={"Study": {"DICOM": {"PatientName": "DOE^JANE"}}})
    with pytest.raises(client.exceptions.ValidationException, match="Series level"):
        series_attr = {
            "Study": {"Series": {SERIES: {"Instances": {SOP: {"DICOM": {"Modality": "CT"}}}}}}
        }
        update(client, datastore, "1", updatable=series_attr)


def test_private_tag_needs_force_and_marks_the_version(
    client: Any, datastore: str, image_set: str
) -> None:
    change = {"Study": {"Series": {SERIES: {"Instances": {SOP: {
        "DICOM": {"00091001": "hello"}, "DICOMVRs": {"00091001": "LO"}}}}}}}  # fmt: skip
    with pytest.raises(client.exceptions.ValidationException, match="requires force=true"):
        update(client, datastore, "1", updatable=change)
    update(client, datastore, "1", force=True, updatable=change)
    final = settle(client, datastore, ISID)
    assert final["overrides"] == {"forced": True}
    instance = metadata(client, datastore, ISID)["Study"]["Series"][SERIES]["Instances"][SOP]
    assert instance["DICOM"]["00091001"] == "hello"
    assert instance["DICOMVRs"]["00091001"] == "LO"


def test_new_private_tag_without_vr_is_rejected(
    client: Any, datastore: str, image_set: str
) -> None:
    change = {"Study": {"Series": {SERIES: {"Instances": {SOP: {"DICOM": {"00091001": "x"}}}}}}}
    with pytest.raises(client.exceptions.ValidationException, match="needs its VR"):
        update(client, datastore, "1", force=True, updatable=change)


def test_private_tag_removal_with_force(client: Any, datastore: str, image_set: str) -> None:
    value = INSTANCES[SOP]["DICOM"][PRIVATE]
    removal = {"Study": {"Series": {SERIES: {"Instances": {SOP: {"DICOM": {PRIVATE: value}}}}}}}
    with pytest.raises(client.exceptions.ValidationException, match="private tag"):
        update(client, datastore, "1", removable=removal)
    update(client, datastore, "1", force=True, removable=removal)
    settle(client, datastore, ISID)
    instance = metadata(client, datastore, ISID)["Study"]["Series"][SERIES]["Instances"][SOP]
    assert PRIVATE not in instance["DICOM"] and PRIVATE not in instance["DICOMVRs"]


@pytest.mark.parametrize("key", ["PixelData", "SchemaVersion", "FrameSizeInBytes"])
def test_never_updatable_attributes(client: Any, datastore: str, image_set: str, key: str) -> None:
    change = {"Study": {"Series": {SERIES: {"Instances": {SOP: {"DICOM": {key: "x"}}}}}}}
    with pytest.raises(client.exceptions.ValidationException, match="cannot be updated"):
        update(client, datastore, "1", force=True, updatable=change)


def test_uid_changes_need_force(client: Any, datastore: str, image_set: str) -> None:
    change = {
        "Study": {"Series": {SERIES: {"Instances": {SOP: {"DICOM": {"SOPInstanceUID": "1.2.3"}}}}}}
    }
    with pytest.raises(client.exceptions.ValidationException, match="identifier"):
        update(client, datastore, "1", updatable=change)
    update(client, datastore, "1", force=True, updatable=change)
    settle(client, datastore, ISID)
    instances = metadata(client, datastore, ISID)["Study"]["Series"][SERIES]["Instances"]
    assert "1.2.3" in instances and SOP not in instances


def test_value_that_does_not_fit_its_vr_needs_force(
    client: Any, datastore: str, image_set: str
) -> None:
    change = {"Study": {"DICOM": {"StudyDate": "2020-01-01"}}}
    with pytest.raises(client.exceptions.ValidationException, match="does not fit its VR DA"):
        update(client, datastore, "1", updatable=change)
    update(client, datastore, "1", force=True, updatable=change)
    assert settle(client, datastore, ISID)["imageSetWorkflowStatus"] == "UPDATED"


def test_unknown_series_or_instance_is_rejected(
    client: Any, datastore: str, image_set: str
) -> None:
    with pytest.raises(client.exceptions.ValidationException, match=r"no series 9\.9"):
        update(client, datastore, "1",
               updatable={"Study": {"Series": {"9.9": {"DICOM": {"SeriesDescription": "x"}}}}})  # fmt: skip
    with pytest.raises(client.exceptions.ValidationException, match=r"no instance 9\.9"):
        update(client, datastore, "1", updatable={"Study": {"Series": {SERIES: {"Instances": {
            "9.9": {"DICOM": {"InstanceNumber": "1"}}}}}}})  # fmt: skip


def test_instance_and_series_removal(client: Any, datastore: str, image_set: str) -> None:
    update(
        client, datastore, "1", removable={"Study": {"Series": {SERIES: {"Instances": {SOP: {}}}}}}
    )
    settle(client, datastore, ISID)
    doc = metadata(client, datastore, ISID)
    assert SOP not in doc["Study"]["Series"][SERIES]["Instances"]
    assert len(doc["Study"]["Series"][SERIES]["Instances"]) == len(INSTANCES) - 1
    with pytest.raises(client.exceptions.ValidationException, match="every instance"):
        update(client, datastore, "2", removable={"Study": {"Series": {SERIES: {}}}})


def test_setting_null_is_an_update(client: Any, datastore: str, image_set: str) -> None:
    update(client, datastore, "1", updatable={"Study": {"DICOM": {"StudyDescription": None}}})
    settle(client, datastore, ISID)
    study = metadata(client, datastore, ISID)["Study"]["DICOM"]
    assert "StudyDescription" in study and study["StudyDescription"] is None


def test_both_union_members_or_none_is_a_validation_error(
    local: Any, datastore: str, image_set: str
) -> None:
    # botocore refuses to send this, so it goes by hand: the server must refuse it too.
    path = f"/datastore/{datastore}/imageSet/{ISID}/updateImageSetMetadata?latestVersion=1"
    for body in (b'{"revertToVersionId": "1", "DICOMUpdates": {}}', b"{}"):
        status, headers, data = raw_request(local.url, "POST", path, body)
        assert status == 400
        assert headers["x-amzn-errortype"] == "ValidationException"
        assert b"exactly one" in data


def test_schema_version_string_or_number(client: Any, datastore: str, image_set: str) -> None:
    payload = b'{"SchemaVersion": "1.1", "Study": {"DICOM": {"StudyDescription": "S"}}}'
    client.update_image_set_metadata(
        datastoreId=datastore, imageSetId=ISID, latestVersionId="1",
        updateImageSetMetadataUpdates={"DICOMUpdates": {"updatableAttributes": payload}},
    )  # fmt: skip
    settle(client, datastore, ISID)
    with pytest.raises(client.exceptions.ValidationException, match="SchemaVersion"):
        client.update_image_set_metadata(
            datastoreId=datastore, imageSetId=ISID, latestVersionId="2",
            updateImageSetMetadataUpdates={"DICOMUpdates": {"updatableAttributes": b'{"SchemaVersion": 2}'}},
        )  # fmt: skip


def test_injected_failure_takes_a_version_and_keeps_the_document(
    local: Any, client: Any, datastore: str, image_set: str
) -> None:
    local.configure(faults={"fail_updates": 1, "fail_message": "Update failed: disk on fire"})
    update(client, datastore, "1", updatable={"Study": {"DICOM": {"StudyDescription": "A"}}})
    final = settle(client, datastore, ISID)
    assert final["versionId"] == "2"
    assert final["imageSetWorkflowStatus"] == "UPDATE_FAILED"
    assert final["message"] == "Update failed: disk on fire"
    assert metadata(client, datastore, ISID) == metadata(client, datastore, ISID, "1")


class TestPrimary:
    @pytest.fixture
    def primaries(self, local: Any, datastore: str) -> list[str]:
        second = {**USDOPPLER, "Study": {**USDOPPLER["Study"], "Series": {}}}
        second["Study"]["Series"] = {"1.2.3.4": {"DICOM": {"SeriesInstanceUID": "1.2.3.4"},
                                                 "Instances": {"1.2.3.4.5": {"DICOM": {}}}}}  # fmt: skip
        return [
            put_document(local, datastore, USDOPPLER, ISID, primary=True),
            put_document(local, datastore, second, "2" * 32, primary=True),
        ]

    def test_patient_and_series_level_refused(
        self, client: Any, datastore: str, primaries: list[str]
    ) -> None:
        with pytest.raises(client.exceptions.ValidationException, match="primary image sets"):
            update(client, datastore, "1", updatable={"Patient": {"DICOM": {"PatientName": "X"}}})
        with pytest.raises(client.exceptions.ValidationException, match="primary image sets"):
            update(client, datastore, "1",
                   updatable={"Study": {"Series": {SERIES: {"DICOM": {"SeriesDescription": "X"}}}}})  # fmt: skip

    def test_study_level_allowed(self, client: Any, datastore: str, primaries: list[str]) -> None:
        update(client, datastore, "1", updatable={"Study": {"DICOM": {"StudyDescription": "OK"}}})
        assert settle(client, datastore, ISID)["imageSetWorkflowStatus"] == "UPDATED"

    def test_uids_cannot_change_even_with_force(
        self, client: Any, datastore: str, primaries: list[str]
    ) -> None:
        with pytest.raises(client.exceptions.ValidationException, match="primary image set"):
            update(client, datastore, "1", force=True,
                   updatable={"Study": {"DICOM": {"StudyInstanceUID": "1.2"}}})  # fmt: skip

    def test_include_study_image_sets_updates_every_primary(
        self, client: Any, datastore: str, primaries: list[str]
    ) -> None:
        update(client, datastore, "1", includeStudyImageSets=True,
               updatable={"Study": {"DICOM": {"StudyDescription": "BOTH"}}})  # fmt: skip
        for image_set_id in primaries:
            assert settle(client, datastore, image_set_id)["versionId"] == "2"
            assert (
                metadata(client, datastore, image_set_id)["Study"]["DICOM"]["StudyDescription"]
                == "BOTH"
            )

    def test_include_study_image_sets_is_atomic(
        self, client: Any, datastore: str, primaries: list[str]
    ) -> None:
        # The second set lacks the series named: the whole call fails, neither set moves.
        with pytest.raises(client.exceptions.ValidationException):
            update(client, datastore, "1", includeStudyImageSets=True, updatable={"Study": {
                "DICOM": {"StudyDescription": "X"},
                "Series": {SERIES: {"Instances": {SOP: {"DICOM": {"InstanceNumber": "9"}}}}}}})  # fmt: skip
        for image_set_id in primaries:
            assert (
                client.get_image_set(datastoreId=datastore, imageSetId=image_set_id)["versionId"]
                == "1"
            )
