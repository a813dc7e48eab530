"""Tests for reconciler.emulator.dicom_import: DICOM Part 10 files -> AHI metadata documents."""

from __future__ import annotations

import base64
import json
import re
import shutil
import zlib
from array import array
from pathlib import Path
from typing import Any

import pydicom
import pydicom.data
import pytest
from pydicom import datadict
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import generate_frames
from pydicom.uid import UID

from reconciler.dicom.levels import Level, level_of
from reconciler.emulator.dicom_import import (
    FailedFile,
    ImportBatch,
    dataset_to_document,
    merge_into,
    read_files,
    read_folder,
    sample_files,
)

# pydicom warns (UserWarning) about the invalid values some of its sample files hold.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TEST_FILES = Path(str(pydicom.data.__file__)).parent / "test_files"
# A real GetImageSetMetadata document (the copy of shared/reference/ the suite keeps).
REFERENCE = Path(__file__).resolve().parents[1] / "data" / "metadata-usdoppler.json"
HEX_KEY = re.compile(r"^[0-9A-F]{8}$")
FRAME_ID = re.compile(r"^[0-9a-f]{32}$")
BINARY_VRS = {"OB", "OW", "UN", "OD", "OF", "OL", "OV"}


@pytest.fixture(scope="module")
def samples() -> list[Path]:
    return sample_files()


@pytest.fixture(scope="module")
def sample_batch(samples: list[Path]) -> ImportBatch:
    return read_files(samples)


def _only_instance(doc: dict[str, Any]) -> dict[str, Any]:
    series = next(iter(doc["Study"]["Series"].values()))
    instance: dict[str, Any] = next(iter(series["Instances"].values()))
    return instance


def _document(name: str) -> dict[str, Any]:
    return dataset_to_document(pydicom.dcmread(TEST_FILES / name))


def _instances(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for s in doc["Study"]["Series"].values() for i in s["Instances"].values()]


# -- sample files ----------------------------------------------------------------------


def test_sample_files_are_sorted_and_carry_uids(samples: list[Path]) -> None:
    assert len(samples) >= 30
    assert samples == sorted(samples)
    assert all(p.suffix == ".dcm" and p.parent == TEST_FILES for p in samples)
    names = {p.name for p in samples}
    assert "CT_small.dcm" in names
    assert "no_meta.dcm" not in names  # no Part 10 header
    assert "priv_SQ.dcm" not in names  # no UIDs


def test_sample_batch_is_complete(samples: list[Path]) -> None:
    batch = read_files(samples)
    assert len(batch.imported) + len(batch.failed) == len(samples)
    assert len(batch.documents) >= 20
    assert {i.study_uid for i in batch.imported} == set(batch.documents)
    reasons = {f.path.rsplit("/", 1)[-1]: f.reason for f in batch.failed}
    assert reasons["MR_truncated.dcm"].startswith("truncated DICOM file")
    assert reasons["MR_small_RLE.dcm"].startswith("duplicate SOPInstanceUID")


def test_levels_follow_level_of(sample_batch: ImportBatch) -> None:
    for study_uid, doc in sample_batch.documents.items():
        assert list(doc) == ["SchemaVersion", "Patient", "Study"]
        assert doc["SchemaVersion"] == "1.1"
        assert all(level_of(k) is Level.PATIENT for k in doc["Patient"]["DICOM"])
        assert list(doc["Study"]) == ["DICOM", "Series"]
        assert all(level_of(k) is Level.STUDY for k in doc["Study"]["DICOM"])
        assert doc["Study"]["DICOM"]["StudyInstanceUID"] == study_uid
        for series_uid, series in doc["Study"]["Series"].items():
            assert all(level_of(k) is Level.SERIES for k in series["DICOM"])
            assert series["DICOM"]["SeriesInstanceUID"] == series_uid
            for sop_uid, instance in series["Instances"].items():
                dicom = instance["DICOM"]
                assert all(level_of(k) is Level.INSTANCE for k in dicom), sop_uid
                assert dicom["SOPInstanceUID"] == sop_uid
                assert "TransferSyntaxUID" in dicom  # file meta sits at instance level
                assert "FileMetaInformationGroupLength" not in dicom
                assert set(instance) <= {
                    "DICOM",
                    "DICOMVRs",
                    "ImageFrames",
                    "StoredTransferSyntaxUID",
                }


def test_documents_are_plain_json(sample_batch: ImportBatch) -> None:
    text = json.dumps(sample_batch.documents, allow_nan=False)
    assert json.loads(text) == sample_batch.documents


def test_every_hex_key_has_a_vr_and_keywords_do_not(sample_batch: ImportBatch) -> None:
    def keys(obj: Any) -> set[str]:
        found: set[str] = set()
        if isinstance(obj, dict):
            for key, value in obj.items():
                found.add(key)
                found |= keys(value)
        elif isinstance(obj, list):
            for value in obj:
                found |= keys(value)
        return found

    for doc in sample_batch.documents.values():
        for instance in _instances(doc):
            vrs = instance.get("DICOMVRs", {})
            assert isinstance(instance["DICOMVRs"], dict)  # on every instance, {} when empty
            hex_keys = {k for k in keys(instance["DICOM"]) if HEX_KEY.match(k)}
            assert hex_keys <= set(vrs)
            assert all(HEX_KEY.match(k) for k in vrs)


# -- values ------------------------------------------------------------------------------


def test_ct_small_values() -> None:
    ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    doc = dataset_to_document(ds)
    patient = doc["Patient"]["DICOM"]
    study = doc["Study"]["DICOM"]
    series = doc["Study"]["Series"][ds.SeriesInstanceUID]["DICOM"]
    instance = doc["Study"]["Series"][ds.SeriesInstanceUID]["Instances"][ds.SOPInstanceUID]
    dicom = instance["DICOM"]

    assert patient["PatientName"] == "CompressedSamples^CT1"  # PN: plain string
    assert patient["PatientBirthDate"] is None  # empty element
    assert study["ReferringPhysicianName"] is None
    assert study["PatientWeight"] == "0.000000"  # DS as written, Study level
    assert series["SeriesNumber"] == "1"  # IS as a string
    assert series["SoftwareVersions"] == ["05"]  # VM 1-n: always an array
    assert series["PixelPaddingValue"] == -2000  # US or SS, resolved to SS
    assert dicom["InstanceNumber"] == "1"
    assert dicom["SliceThickness"] == "5.000000"
    assert dicom["ImagePositionPatient"] == ["-158.135803", "-179.035797", "-75.699997"]
    assert dicom["PixelSpacing"] == ["0.661468", "0.661468"]
    assert dicom["SpecificCharacterSet"] == ["ISO_IR 100"]
    assert dicom["ImageType"] == ["ORIGINAL", "PRIMARY", "AXIAL"]
    assert dicom["Rows"] == 128 and dicom["Columns"] == 128  # US: numbers
    assert dicom["BitsAllocated"] == 16
    assert dicom["FileMetaInformationVersion"] == "AAE="  # OB: base64
    assert dicom["PixelData"] is None
    assert "OtherPatientIDsSequence" in patient  # SQ at its level, items keyword-keyed
    assert patient["OtherPatientIDsSequence"][0] == {
        "PatientID": "ABCD1234",
        "TypeOfPatientID": "TEXT",
    }
    assert "StoredTransferSyntaxUID" not in instance  # transcoded by the service

    [frame] = instance["ImageFrames"]
    assert FRAME_ID.match(frame["ID"])
    assert frame["PixelDataChecksumFromBaseToFullResolution"] == [
        {"Width": 128, "Height": 128, "Checksum": zlib.crc32(ds.PixelData)}
    ]
    assert frame["FrameSizeInBytes"] == len(ds.PixelData) == 128 * 128 * 2
    pixels = array("h")
    pixels.frombytes(ds.PixelData)
    assert (frame["MinPixelValue"], frame["MaxPixelValue"]) == (min(pixels), max(pixels))
    assert list(frame) == [
        "ID",
        "PixelDataChecksumFromBaseToFullResolution",
        "MinPixelValue",
        "MaxPixelValue",
        "FrameSizeInBytes",
    ]


def test_private_tags_are_hex_keys_with_vrs() -> None:
    instance = _only_instance(_document("CT_small.dcm"))
    dicom, vrs = instance["DICOM"], instance["DICOMVRs"]
    assert dicom["00090010"] == "GEMS_IDEN_01"  # private creator, listed like the reference
    assert vrs["00090010"] == "LO"
    assert dicom["00191003"] == "373.750000" and vrs["00191003"] == "DS"
    assert dicom["0019101B"] == "-320.197968"  # trailing padding space stripped
    assert dicom["00091027"] == 862399669 and vrs["00091027"] == "SL"
    assert dicom["00431012"] == [14, 2, 3]  # several values: an array
    assert dicom["00091030"] is None  # empty
    assert not any(HEX_KEY.match(k) and int(k[:4], 16) % 2 == 0 for k in vrs)


def test_binary_and_sequence_values() -> None:
    dicom = _only_instance(_document("examples_overlay.dcm"))["DICOM"]
    overlay = base64.b64decode(dicom["OverlayData"])  # OW: base64 of the bytes
    assert len(overlay) == (300 * 484 + 7) // 8
    assert dicom["OverlayOrigin"] == [1, 1]
    assert isinstance(dicom["ReferencedImageSequence"], list)
    assert all(isinstance(item, dict) for item in dicom["ReferencedImageSequence"])


def test_empty_number_strings_are_null() -> None:
    dicom = _only_instance(_document("reportsi_with_empty_number_tags.dcm"))["DICOM"]
    assert dicom["ExaminedBodyThickness"] is None
    assert dicom["SimpleFrameList"] is None
    assert dicom["PerformedProcedureCodeSequence"] is None  # empty sequence


def test_invalid_values_do_not_fail_the_file() -> None:
    dicom = _only_instance(_document("badVR.dcm"))["DICOM"]
    assert dicom["NumberOfFrames"] == "1A"  # IS kept as written, even when invalid


# -- pixel data --------------------------------------------------------------------------


def test_native_checksums_do_not_depend_on_encoding() -> None:
    names = ["MR_small.dcm", "MR_small_bigendian.dcm", "MR_small_expb.dcm", "MR_small_implicit.dcm"]
    frames = [_only_instance(_document(n))["ImageFrames"] for n in names]
    assert all(f == frames[0] for f in frames)
    assert frames[0][0]["MinPixelValue"] < frames[0][0]["MaxPixelValue"]


def test_planar_colour_is_checksummed_as_decoded() -> None:
    ds = pydicom.dcmread(TEST_FILES / "ExplVR_BigEnd.dcm")
    assert ds.PlanarConfiguration == 1 and ds.SamplesPerPixel == 3
    (frame,) = _only_instance(dataset_to_document(ds))["ImageFrames"]
    decoded = ds.pixel_array  # rows x columns x RGB, as any decoder returns it
    assert frame["PixelDataChecksumFromBaseToFullResolution"][0]["Checksum"] == zlib.crc32(
        decoded.astype(decoded.dtype.newbyteorder("<")).tobytes()
    )


def test_multi_frame_native() -> None:
    ds = pydicom.dcmread(TEST_FILES / "rtdose.dcm")
    frames = _only_instance(dataset_to_document(ds))["ImageFrames"]
    size = ds.Rows * ds.Columns * 4
    assert len(frames) == ds.NumberOfFrames == 15
    for index, frame in enumerate(frames):
        pixels = ds.PixelData[index * size : (index + 1) * size]
        assert frame["PixelDataChecksumFromBaseToFullResolution"][0]["Checksum"] == zlib.crc32(
            pixels
        )
        assert frame["FrameSizeInBytes"] == size
    assert len({f["ID"] for f in frames}) == 15


def test_one_bit_frames() -> None:
    frames = _only_instance(_document("liver_1frame.dcm"))["ImageFrames"]
    assert frames[0]["FrameSizeInBytes"] == 512 * 512 // 8
    assert (frames[0]["MinPixelValue"], frames[0]["MaxPixelValue"]) == (0, 1)


def test_encapsulated_frames() -> None:
    ds = pydicom.dcmread(TEST_FILES / "examples_ybr_color.dcm")
    instance = _only_instance(dataset_to_document(ds))
    encoded = list(generate_frames(ds.PixelData, number_of_frames=ds.NumberOfFrames))
    frames = instance["ImageFrames"]
    assert len(frames) == len(encoded) == 30
    for frame, data in zip(frames, encoded, strict=True):
        assert frame["PixelDataChecksumFromBaseToFullResolution"][0]["Checksum"] == zlib.crc32(data)
        assert frame["FrameSizeInBytes"] == ds.Rows * ds.Columns * 3  # decoded size
        assert "MinPixelValue" not in frame
    assert instance["StoredTransferSyntaxUID"] == "1.2.840.10008.1.2.4.50"  # kept as is

    rle = _only_instance(_document("SC_rgb_rle_2frame.dcm"))
    assert len(rle["ImageFrames"]) == 2
    assert "StoredTransferSyntaxUID" not in rle  # transcoded to HTJ2K by the service


def test_no_pixel_data_no_frames() -> None:
    assert _only_instance(_document("rtplan.dcm"))["ImageFrames"] == []


# -- bad input -----------------------------------------------------------------------------


def _write_ct(path: Path, cut: int | None = None) -> None:
    data = (TEST_FILES / "CT_small.dcm").read_bytes()
    path.write_bytes(data if cut is None else data[:cut])


def test_bad_files_become_failed_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello, not DICOM\n")
    (tmp_path / "empty.dcm").write_bytes(b"")
    _write_ct(tmp_path / "cut_in_pixels.dcm", cut=20_000)
    _write_ct(tmp_path / "cut_in_header.dcm", cut=1_000)
    ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    del ds.SeriesInstanceUID
    ds.save_as(tmp_path / "no_series.dcm")
    _write_ct(tmp_path / "good.dcm")

    batch = read_folder(tmp_path)
    reasons = {Path(f.path).name: f.reason for f in batch.failed}
    assert reasons["notes.txt"] == "not a DICOM Part 10 file"
    assert reasons["empty.dcm"] == "not a DICOM Part 10 file"
    assert reasons["cut_in_pixels.dcm"].startswith("truncated DICOM file")
    assert reasons["cut_in_header.dcm"].startswith(("missing", "truncated"))
    assert reasons["no_series.dcm"] == "missing SeriesInstanceUID"
    assert all("\n" not in r for r in reasons.values())
    assert [Path(i.path).name for i in batch.imported] == ["good.dcm"]


def test_truncation_anywhere_never_raises(tmp_path: Path) -> None:
    data = (TEST_FILES / "CT_small.dcm").read_bytes()
    paths = []
    for cut in range(0, len(data), 997):
        path = tmp_path / f"cut_{cut:06d}.dcm"
        path.write_bytes(data[:cut])
        paths.append(path)
    batch = read_files(paths)
    assert len(batch.imported) + len(batch.failed) == len(paths)
    assert not batch.imported  # every cut loses at least part of the pixel data
    assert all(isinstance(f, FailedFile) and f.reason for f in batch.failed)


def test_encapsulated_truncation_is_reported(tmp_path: Path) -> None:
    data = (TEST_FILES / "JPEG2000.dcm").read_bytes()
    (tmp_path / "j2k.dcm").write_bytes(data[:-200])
    batch = read_folder(tmp_path)
    assert not batch.imported and len(batch.failed) == 1


def test_duplicate_sop_instance_keeps_the_first(tmp_path: Path) -> None:
    for name in ("MR_small.dcm", "MR_small_bigendian.dcm"):
        shutil.copy(TEST_FILES / name, tmp_path / name)
    batch = read_folder(tmp_path)
    assert [Path(i.path).name for i in batch.imported] == ["MR_small.dcm"]
    [failed] = batch.failed
    assert Path(failed.path).name == "MR_small_bigendian.dcm"
    assert failed.reason.startswith("duplicate SOPInstanceUID")


def test_read_folder_is_recursive_and_deterministic(tmp_path: Path) -> None:
    names = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG-lossy.dcm", "JPEG2000.dcm"]
    for index, name in enumerate(names):
        folder = tmp_path / f"d{index % 2}" / "sub"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(TEST_FILES / name, folder / name)
    (tmp_path / "d0" / "README").write_text("x")
    (tmp_path / ".hidden").write_bytes(b"\0" * 200)

    first, second = read_folder(tmp_path), read_folder(tmp_path)
    assert json.dumps(first.documents) == json.dumps(second.documents)
    assert first.imported == second.imported and first.failed == second.failed
    assert [i.path for i in first.imported] == sorted(i.path for i in first.imported)
    assert {Path(f.path).name for f in first.failed} == {"README", ".hidden"}
    assert len(first.imported) == 5
    # JPEG-lossy.dcm and JPEG2000.dcm share a study: one document, two instances
    assert len(first.documents) == 4
    assert list(first.documents) == list(dict.fromkeys(i.study_uid for i in first.imported))


def test_read_folder_of_missing_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_folder(tmp_path / "nope")


# -- merging ----------------------------------------------------------------------------------


def test_merge_into_adds_series_and_keeps_first_values() -> None:
    target = _document("JPEG-lossy.dcm")
    other = _document("JPEG2000.dcm")
    study_uid = target["Study"]["DICOM"]["StudyInstanceUID"]
    assert other["Study"]["DICOM"]["StudyInstanceUID"] == study_uid
    before = json.dumps(other)
    merge_into(target, other)
    assert json.dumps(other) == before  # other is not modified
    assert set(target["Study"]["Series"]) == {
        *_document("JPEG-lossy.dcm")["Study"]["Series"],
        *other["Study"]["Series"],
    }
    assert len(_instances(target)) == 2
    first = _document("JPEG-lossy.dcm")
    for key, value in first["Patient"]["DICOM"].items():
        assert target["Patient"]["DICOM"][key] == value


def test_merge_into_same_series_and_conflicts(tmp_path: Path) -> None:
    ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    a = dataset_to_document(ds)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = UID("1.2.3.4.5")
    ds.PatientName = "OTHER^NAME"
    ds.SeriesDescription = "added later"
    ds.save_as(tmp_path / "b.dcm")
    shutil.copy(TEST_FILES / "CT_small.dcm", tmp_path / "a.dcm")
    b = dataset_to_document(ds)

    merge_into(a, b)
    series = a["Study"]["Series"][ds.SeriesInstanceUID]
    assert len(series["Instances"]) == 2
    assert a["Patient"]["DICOM"]["PatientName"] == "CompressedSamples^CT1"  # first wins
    assert series["DICOM"]["SeriesDescription"] == "added later"  # missing keys are added

    batch = read_folder(tmp_path)
    assert len(batch.imported) == 2 and len(batch.documents) == 1
    assert any("PatientName" in note for note in batch.conflicts)


def test_merge_into_refuses_another_study() -> None:
    with pytest.raises(ValueError):
        merge_into(_document("CT_small.dcm"), _document("MR_small.dcm"))


# -- the reference document ----------------------------------------------------------------


def _element(key: str, value: Any, vrs: dict[str, str]) -> DataElement:
    if HEX_KEY.match(key):
        tag, vr = int(key, 16), vrs[key]
    else:
        found = datadict.tag_for_keyword(key)
        assert found is not None, key
        tag, vr = found, datadict.dictionary_VR(found)
    if vr == "SQ":
        items = []
        for item in value or []:
            child = Dataset()
            for k, v in item.items():
                child.add(_element(k, v, vrs))
            items.append(child)
        return DataElement(tag, vr, items)
    if vr in BINARY_VRS:
        return DataElement(tag, vr, base64.b64decode(value) if value is not None else None)
    if vr == "AT" and value is not None:
        return DataElement(tag, vr, [int(v, 16) for v in value])
    return DataElement(tag, vr, value)


def _write_reference_files(reference: dict[str, Any], folder: Path) -> None:
    """Re-create the Implicit VR files behind a reference document (pixels are zeros)."""
    patient = reference["Patient"]["DICOM"]
    study = reference["Study"]["DICOM"]
    for series in reference["Study"]["Series"].values():
        for index, instance in enumerate(series["Instances"].values()):
            vrs = instance.get("DICOMVRs", {})
            ds, meta = Dataset(), FileMetaDataset()
            for level in (patient, study, series["DICOM"], instance["DICOM"]):
                for key, value in level.items():
                    element = _element(key, value, vrs)
                    if element.tag == 0x7FE00010:
                        continue
                    (meta if element.tag.group == 2 else ds).add(element)
            ds.file_meta = meta
            frames = int(instance["DICOM"]["NumberOfFrames"])
            ds.PixelData = bytes(ds.Rows * ds.Columns * ds.SamplesPerPixel * frames)
            ds["PixelData"].VR = "OB"
            ds.save_as(
                folder / f"{index:03d}.dcm",
                implicit_vr=True,
                little_endian=True,
                enforce_file_format=True,
            )


def _assert_matches_reference(ours: dict[str, Any], reference: dict[str, Any]) -> None:
    assert ours["SchemaVersion"] == reference["SchemaVersion"]
    assert ours["Patient"] == reference["Patient"]
    assert ours["Study"]["DICOM"] == reference["Study"]["DICOM"]
    assert ours["Study"]["Series"].keys() == reference["Study"]["Series"].keys()
    for uid, series in reference["Study"]["Series"].items():
        mine = ours["Study"]["Series"][uid]
        assert mine["DICOM"] == series["DICOM"]
        assert mine["Instances"].keys() == series["Instances"].keys()
        for sop, instance in series["Instances"].items():
            got = mine["Instances"][sop]
            assert got["DICOM"] == instance["DICOM"]
            assert got["DICOMVRs"] == instance["DICOMVRs"]
            assert list(got) == list(instance)
            first, expected = got["ImageFrames"][0], instance["ImageFrames"][0]
            assert list(first) == list(expected)
            assert first["FrameSizeInBytes"] == expected["FrameSizeInBytes"]
            # only the full-resolution checksum is produced (the last reference entry)
            [full] = first["PixelDataChecksumFromBaseToFullResolution"]
            ref_full = expected["PixelDataChecksumFromBaseToFullResolution"][-1]
            assert (full["Width"], full["Height"]) == (ref_full["Width"], ref_full["Height"])


def test_reference_document_round_trips(tmp_path: Path) -> None:
    """Files rebuilt from the reference give back the reference, element for element."""
    reference = json.loads(REFERENCE.read_text(encoding="utf-8"))
    del reference["DatastoreID"], reference["ImageSetID"]
    _write_reference_files(reference, tmp_path)
    batch = read_folder(tmp_path)
    assert not batch.failed and not batch.conflicts
    [doc] = batch.documents.values()
    _assert_matches_reference(doc, reference)
    for series_uid, series in reference["Study"]["Series"].items():
        for sop_uid, instance in series["Instances"].items():
            ours = doc["Study"]["Series"][series_uid]["Instances"][sop_uid]["ImageFrames"]
            assert len(ours) == len(instance["ImageFrames"])  # 1 or 14 frames
