"""What a valid manifest tree becomes: the model the engine consumes."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.dicom.levels import Level
from reconciler.manifest import (
    DesiredValue,
    LoadResult,
    Location,
    Removal,
    Selector,
    SelectorKind,
    SelectorTarget,
    find_conflicts,
    load_tree,
)

DATASTORE = "0123456789abcdef0123456789abcdef"
OTHER_DATASTORE = "fedcba9876543210fedcba9876543210"

FULL = """\
# yaml-language-server: $schema=schema.json
apiVersion: reconciler/v1
kind: ImageSetMetadata
metadata:
  name: full
  labels: {team: radiology}
  annotations: {ticket: RAD-1}
spec:
  selector:
    studyInstanceUID: "1.2.840.10008.1"
  force: true
  set:
    Patient:
      PatientName: DOE^JANE
    Study:
      StudyDescription: CT CHEST
      StudyID: "42"
      AccessionNumber: null
    Series:
      "1.2.840.10008.1.2":
        SeriesDescription: AXIAL
        SoftwareVersions: ["1.06", "2.0"]
        Instances:
          "1.2.840.10008.1.2.3":
            ImageComments: checked
            "0019100A": {value: "97", vr: DS}
  remove:
    Study: [ReferringPhysicianName]
    Series:
      "1.2.840.10008.1.2":
        attributes: [ProtocolName]
        Instances:
          "1.2.840.10008.1.2.3":
            attributes: ["00191010"]
          "1.2.840.10008.1.2.4":
            entire: true
      "1.2.840.10008.1.9":
        entire: true
"""


def _tree(tmp_path: Path, files: dict[str, str], project: str | None = None) -> Path:
    (tmp_path / ".git").mkdir(parents=True, exist_ok=True)  # the project search stops here
    if project is not None:
        (tmp_path / "reconciler.yaml").write_text(project)
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def _load(tmp_path: Path, files: dict[str, str], project: str | None = None) -> LoadResult:
    return load_tree([_tree(tmp_path, files, project)])


def _manifest(name: str, set_study: str = "", selector: str = 'patientId: "P1"') -> str:
    return (
        f"apiVersion: reconciler/v1\nkind: ImageSetMetadata\nmetadata: {{name: {name}}}\n"
        f"spec:\n  selector: {{{selector}}}\n  set:\n    Study: {{{set_study}}}\n"
    )


def test_full_manifest_round_trips_into_the_model(tmp_path: Path) -> None:
    result = _load(tmp_path, {"full.yaml": FULL}, project=f"datastoreId: {DATASTORE}\n")
    assert result.problems == []
    (manifest,) = result.manifests
    assert manifest.name == "full"
    assert manifest.datastore_id == DATASTORE
    assert manifest.selector == Selector(SelectorKind.STUDY_INSTANCE_UID, "1.2.840.10008.1")
    assert manifest.force is True
    assert manifest.labels == {"team": "radiology"}
    assert manifest.annotations == {"ticket": "RAD-1"}
    assert manifest.location == Location((tmp_path / "full.yaml").as_posix(), 2, 1)
    series, sop = "1.2.840.10008.1.2", "1.2.840.10008.1.2.3"
    assert [(s.level, s.series_uid, s.sop_uid, s.key, s.value, s.vr) for s in manifest.sets] == [
        (Level.PATIENT, None, None, "PatientName", "DOE^JANE", None),
        (Level.STUDY, None, None, "StudyDescription", "CT CHEST", None),
        (Level.STUDY, None, None, "StudyID", "42", None),
        (Level.STUDY, None, None, "AccessionNumber", None, None),  # set to empty
        (Level.SERIES, series, None, "SeriesDescription", "AXIAL", None),
        (Level.SERIES, series, None, "SoftwareVersions", ["1.06", "2.0"], None),
        (Level.INSTANCE, series, sop, "ImageComments", "checked", None),
        (Level.INSTANCE, series, sop, "0019100A", "97", "DS"),
    ]
    assert [(r.level, r.series_uid, r.sop_uid, r.key) for r in manifest.removals] == [
        (Level.STUDY, None, None, "ReferringPhysicianName"),
        (Level.SERIES, series, None, "ProtocolName"),
        (Level.INSTANCE, series, sop, "00191010"),
        (Level.INSTANCE, series, "1.2.840.10008.1.2.4", None),  # the whole instance
        (Level.SERIES, "1.2.840.10008.1.9", None, None),  # the whole series
    ]
    name_location = manifest.sets[0].location
    assert (name_location.line, name_location.column) == (14, 7)
    assert str(name_location).endswith("full.yaml:14:7")


def test_a_manifest_owns_only_what_it_names(tmp_path: Path) -> None:
    text = _manifest("one", "StudyDescription: CT")
    result = _load(tmp_path, {"m.yaml": text}, project=f"datastoreId: {DATASTORE}\n")
    (manifest,) = result.manifests
    assert [(s.level, s.key) for s in manifest.sets] == [(Level.STUDY, "StudyDescription")]
    assert manifest.removals == ()


def test_null_is_a_value_not_a_removal(tmp_path: Path) -> None:
    text = _manifest("empty-value", "StudyDescription: null")
    (manifest,) = _load(tmp_path, {"m.yaml": text}, f"datastoreId: {DATASTORE}\n").manifests
    assert manifest.sets[0].value is None
    assert manifest.removals == ()


def test_defaults_from_the_nearest_project_file(tmp_path: Path) -> None:
    files = {
        "manifests/a.yaml": _manifest("a", "StudyDescription: A"),
        "manifests/team/b.yaml": _manifest("b", "StudyDescription: B", 'patientId: "P2"'),
        "manifests/team/c.yaml": _manifest("c", "StudyDescription: C", 'patientId: "P3"').replace(
            "spec:\n", f"spec:\n  datastoreId: {OTHER_DATASTORE}\n"
        ),
    }
    root = _tree(tmp_path, files, project=f"datastoreId: {DATASTORE}\nregion: eu-west-1\n")
    result = load_tree([root / "manifests"])
    assert result.ok, result.problems
    assert {m.name: m.datastore_id for m in result.manifests} == {
        "a": DATASTORE,
        "b": DATASTORE,
        "c": OTHER_DATASTORE,  # spec.datastoreId wins over the default
    }


def test_project_search_stops_at_the_git_root(tmp_path: Path) -> None:
    (tmp_path / "reconciler.yaml").write_text(f"datastoreId: {DATASTORE}\n")  # outside the repo
    repo = tmp_path / "repo"
    repo.mkdir()
    result = _load(repo, {"m.yaml": _manifest("m", "StudyDescription: CT")})
    assert [p.code for p in result.problems] == ["no-datastore"]


def test_walk_is_recursive_sorted_and_skips_hidden_and_project_files(tmp_path: Path) -> None:
    files = {
        "b/two.yml": _manifest("two", "StudyDescription: '2'", 'patientId: "P2"'),
        "a/one.yaml": _manifest("one", "StudyDescription: '1'", 'patientId: "P1"')
        + "---\n"
        + _manifest("one-bis", "StudyDescription: '1b'", 'patientId: "P9"')
        + "---\n",  # a trailing empty document is fine
        ".hidden/ignored.yaml": "not: [a manifest",
        "a/.ignored.yaml": "not: [a manifest",
        "notes.txt": "not yaml",
    }
    result = _load(tmp_path, files, project=f"datastoreId: {DATASTORE}\n")
    assert result.problems == []
    assert [m.name for m in result.manifests] == ["one", "one-bis", "two"]
    assert (result.files_checked, result.documents_checked) == (2, 3)


def test_all_problems_of_all_files_are_reported(tmp_path: Path) -> None:
    files = {
        "a.yaml": _manifest("a", "StudyDescripton: CT"),
        "b.yaml": _manifest("b", "StudyDate: 2024-01-01", 'patientId: "P2"'),
        "c.yaml": "key: [unclosed\n",
    }
    result = _load(tmp_path, files, project=f"datastoreId: {DATASTORE}\n")
    assert [(Path(p.location.path).name, p.code) for p in result.problems] == [
        ("a.yaml", "unknown-keyword"),
        ("b.yaml", "value-vr"),
        ("c.yaml", "yaml-syntax"),
    ]


def test_conflicts_name_both_places(tmp_path: Path) -> None:
    files = {
        "a.yaml": _manifest("a", "StudyDescription: CT"),
        "b.yaml": _manifest("b", "StudyDescription: MR"),
        "c.yaml": _manifest("c", "StudyDescription: CT", 'patientId: "P2"'),  # other target
    }
    result = _load(tmp_path, files, project=f"datastoreId: {DATASTORE}\n")
    (problem,) = result.problems
    assert problem.code == "conflict"
    assert str(problem.location).endswith("b.yaml:7:13")
    assert "a.yaml:7:13" in problem.message


def test_same_selector_in_another_datastore_is_another_target(tmp_path: Path) -> None:
    other = _manifest("b", "StudyDescription: MR").replace(
        "spec:\n", f"spec:\n  datastoreId: {OTHER_DATASTORE}\n"
    )
    files = {"a.yaml": _manifest("a", "StudyDescription: CT"), "b.yaml": other}
    assert _load(tmp_path, files, project=f"datastoreId: {DATASTORE}\n").problems == []


def test_same_value_twice_is_a_warning(tmp_path: Path) -> None:
    files = {
        "a.yaml": _manifest("a", "StudyDescription: CT"),
        "b.yaml": _manifest("b", "StudyDescription: CT"),
    }
    result = _load(tmp_path, files, project=f"datastoreId: {DATASTORE}\n")
    assert result.ok
    assert [p.code for p in result.warnings] == ["shared-ownership"]


def test_find_conflicts_on_resolved_targets() -> None:
    """The engine can re-check after resolution: two selectors, one image set."""
    here = Location("a.yaml", 3, 5)
    there = Location("b.yaml", 3, 5)

    def manifest(name: str, location: Location, value: str):  # type: ignore[no-untyped-def]
        from reconciler.manifest.model import Manifest

        item = DesiredValue(Level.STUDY, None, None, "StudyDescription", value, None, location)
        selector = Selector(SelectorKind.PATIENT_ID, name)
        return Manifest(name, Path(location.path), location, DATASTORE, selector, False,
                        (item,), (), "digest")  # fmt: skip

    a, b = manifest("a", here, "CT"), manifest("b", there, "MR")
    assert find_conflicts([(SelectorTarget(DATASTORE, a.selector), a),
                           (SelectorTarget(DATASTORE, b.selector), b)]) == []  # fmt: skip
    (problem,) = find_conflicts([("image-set-1", a), ("image-set-1", b)])
    assert problem.location == there and "a.yaml:3:5" in problem.message


def test_duplicate_names_across_files(tmp_path: Path) -> None:
    files = {
        "a.yaml": _manifest("same", "StudyDescription: CT"),
        "sub/b.yaml": _manifest("same", "StudyDescription: MR", 'patientId: "P2"'),
    }
    result = _load(tmp_path, files, project=f"datastoreId: {DATASTORE}\n")
    (problem,) = result.problems
    assert problem.code == "duplicate-name"
    assert str(problem.location).endswith("sub/b.yaml:3:18")
    assert "a.yaml:3:18" in problem.message


def test_digest_is_stable_and_content_sensitive(tmp_path: Path) -> None:
    project = f"datastoreId: {DATASTORE}\n"
    first = _load(tmp_path / "1", {"m.yaml": _manifest("m", "StudyDescription: CT")}, project)
    again = _load(tmp_path / "2", {"m.yaml": "# comment\n" + _manifest("m", "StudyDescription: CT")}, project)  # fmt: skip
    changed = _load(tmp_path / "3", {"m.yaml": _manifest("m", "StudyDescription: MR")}, project)
    assert first.manifests[0].digest == again.manifests[0].digest  # comments do not matter
    assert first.manifests[0].digest != changed.manifests[0].digest
    assert first.digest == again.digest != changed.digest


def test_skip_non_manifests(tmp_path: Path) -> None:
    files = {
        "workflow.yml": "on: push\njobs: {}\n",
        "m.yaml": _manifest("m", "StudyDescription: CT"),
        "typo.yaml": _manifest("typo", "StudyDescription: MR", 'patientId: "P2"').replace(
            "apiVersion", "apiVersoin"
        ),
    }
    root = _tree(tmp_path, files, project=f"datastoreId: {DATASTORE}\n")
    strict = load_tree([root])
    lenient = load_tree([root], skip_non_manifests=True)
    assert any(p.location.path.endswith("workflow.yml") for p in strict.problems)
    assert not any(p.location.path.endswith("workflow.yml") for p in lenient.problems)
    # kind: ImageSetMetadata still marks typo.yaml as a manifest, so its typo is reported.
    assert [p.code for p in lenient.problems] == ["missing-key", "unknown-key"]
    assert lenient.documents_checked == 2


@pytest.mark.parametrize(
    ("body", "codes"),
    [
        ("Study: {StudyDescription: CT}", []),
        ("Study: {PatientName: X}", ["wrong-level"]),
        ("Study: {StudyDate: '20240230'}", ["value-vr"]),
        ("Study: {StudyInstanceUID: '1.2.3'}", ["needs-force"]),
        ("Series: {'1.2.3': {SeriesNumber: 4}}", ["value-vr"]),
        ("Series: {'1.2.3': {SeriesNumber: '4'}}", []),
        ("Series: {'1.2.3': {Manufacturer: [A, B]}}", ["value-vr"]),
        ("Series: {'1.2.3': {Instances: {'1.2.3.4': {ImageType: [ORIGINAL]}}}}", ["needs-force"]),
        (
            "Series: {'1.2.3': {Instances: {'1.2.3.4': {'00091001': {value: x, vr: LO}}}}}",
            ["needs-force"],
        ),
        ("Series: {'1.2.3': {Instances: {'1.2.3.4': {Width: 5}}}}", ["never-updatable"]),
    ],
)
def test_rules(tmp_path: Path, body: str, codes: list[str]) -> None:
    text = (
        "apiVersion: reconciler/v1\nkind: ImageSetMetadata\nmetadata: {name: r}\n"
        f"spec:\n  selector: {{patientId: P1}}\n  set: {{{body}}}\n"
    )
    result = _load(tmp_path, {"m.yaml": text}, project=f"datastoreId: {DATASTORE}\n")
    assert [p.code for p in result.problems] == codes


def test_force_turns_form_errors_into_warnings(tmp_path: Path) -> None:
    text = (
        "apiVersion: reconciler/v1\nkind: ImageSetMetadata\nmetadata: {name: r}\n"
        "spec:\n  selector: {patientId: P1}\n  force: true\n"
        "  set: {Study: {StudyDate: '2024-01-01', StudyDescriptio: x}}\n"
    )
    result = _load(tmp_path, {"m.yaml": text}, project=f"datastoreId: {DATASTORE}\n")
    assert result.ok
    assert sorted(p.code for p in result.warnings) == ["unknown-keyword", "value-vr"]
    assert {s.key for s in result.manifests[0].sets} == {"StudyDate", "StudyDescriptio"}


def test_removal_dataclass_marks_whole_objects() -> None:
    whole = Removal(Level.SERIES, "1.2", None, None, Location("m.yaml", 1, 1))
    assert whole.key is None
    assert str(whole.location) == "m.yaml:1:1"
    assert str(Location("folder")) == "folder"
