"""Table manifests: one manifest per CSV row, errors at file.csv:line:column."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import make_client, metadata

from reconciler.cli import cli
from reconciler.emulator.seed import SEED_DATASTORE_ID, seed
from reconciler.manifest import load_tree

TABLE = """\
apiVersion: reconciler/v1
kind: ImageSetMetadataTable
metadata: {name: ris-fixes, labels: {source: ris}}
spec:
  datastoreId: cfd19b7ba6feae7f6669c119e1af3a46
  table: ris-fixes.csv
  selector: {accessionNumber: "{Accession}"}
  set:
    Patient: {PatientName: "{Name}"}
    Study: {StudyDescription: "{Description}"}
"""


def write(folder: Path, csv: str, manifest: str = TABLE) -> Path:
    (folder / "ris.yaml").write_text(manifest)
    (folder / "ris-fixes.csv").write_text(csv)
    return folder / "ris.yaml"


def test_rows_become_manifests_and_empty_cells_are_not_managed(tmp_path: Path) -> None:
    path = write(tmp_path, "Accession,Name,Description\nA1,DOE^JANE,CT HEAD\nA2,,MR KNEE\n")
    result = load_tree([path])
    assert result.ok, [str(p) for p in result.problems]
    first, second = result.manifests
    assert (first.name, str(first.selector), first.labels) == (
        "ris-fixes-2",
        "accessionNumber=A1",
        {"source": "ris"},
    )
    assert {s.key: s.value for s in first.sets} == {
        "PatientName": "DOE^JANE",
        "StudyDescription": "CT HEAD",
    }
    assert {s.key: s.value for s in second.sets} == {"StudyDescription": "MR KNEE"}
    assert str(second.sets[0].location) == f"{tmp_path.as_posix()}/ris-fixes.csv:3:5"


@pytest.mark.parametrize(
    ("csv", "expected"),
    [
        (
            "Accession,Name,Description\n,X,Y\n",
            "ris-fixes.csv:2:1: error: the selector's cell (Accession) is empty [table]",
        ),
        (
            "Accession,Name,Description\nA1,X,Y,Z\n",
            "ris-fixes.csv:2:0: error: this row has 4 cells, the header 3 [table]",
        ),
        (
            "Accession,Name,Description\nA1,X,20240101 but much longer than a LO may ever be "
            "which is sixty-four characters\n",
            "ris-fixes.csv:2:6: error: StudyDescription (LO)",
        ),
        ("Accession,Nom,Description\nA1,X,Y\n", "ris.yaml:9:28: error: {Name} names no column"),
        ("Accession,Name,Description\nA1,X,Y\nA1,Z,Y\n", "conflict"),
        # Strict CSV: a quote opened and never closed is not one long last cell.
        (
            'Accession,Name,Description\nA1,X,Y\nA2,"X,Y\nA3,X,Y\n',
            "ris-fixes.csv:3:0: error: "
            "the file ends inside the quoted cell this row opens: close its quote [table]",
        ),
        (
            'Accession,Name,Description\nA1,"X"Y,Z\n',
            "ris-fixes.csv:2:0: error: not CSV: ',' expected after '\"' [table]",
        ),
    ],
)
def test_errors_point_at_the_cell(tmp_path: Path, csv: str, expected: str) -> None:
    result = load_tree([write(tmp_path, csv)])
    assert not result.ok
    shown = [str(p).replace(f"{tmp_path.as_posix()}/", "") for p in result.errors]
    assert any(expected in line for line in shown), shown


def test_a_table_outside_the_manifest_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "secret.csv").write_text("Accession\nA1\n")
    manifest = TABLE.replace("table: ris-fixes.csv", "table: ../secret.csv")
    (tmp_path / "sub" / "ris.yaml").write_text(manifest)
    result = load_tree([tmp_path / "sub" / "ris.yaml"])
    assert [p.message for p in result.errors] == [
        "the table must sit in this manifest's folder or below it"
    ]


def test_a_csv_of_corrections_plans_one_update_per_row(
    tmp_path: Path, local: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(local.backend)
    client = make_client(local.url)
    summaries = client.search_image_sets(
        datastoreId=SEED_DATASTORE_ID,
        maxResults=50,
        searchCriteria={"filters": [{"values": [{"isPrimary": True}], "operator": "EQUAL"}]},
    )["imageSetsMetadataSummaries"]
    by_study: dict[str, list[str]] = {}
    for summary in summaries:
        study = summary["DICOMTags"]["DICOMStudyInstanceUID"]
        by_study.setdefault(study, []).append(summary["imageSetId"])
    studies = sorted(s for s, ids in by_study.items() if len(ids) == 1)
    assert len(studies) >= 5
    rows = "".join(f"{uid},FIXED {n}\n" for n, uid in enumerate(studies))
    (tmp_path / "ris-fixes.csv").write_text("StudyInstanceUID,StudyDescription\n" + rows)
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "ris.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: ImageSetMetadataTable\nmetadata: {name: ris}\n"
        f"spec:\n  datastoreId: {SEED_DATASTORE_ID}\n  table: ../ris-fixes.csv\n"
        '  selector: {studyInstanceUID: "{StudyInstanceUID}"}\n'
        '  set: {Study: {StudyDescription: "{StudyDescription}"}}\n'
    )
    (tmp_path / ".git").mkdir()
    (tmp_path / "reconciler.yaml").write_text(
        f"endpoint: {local.url}\nrateLimits: {{UpdateImageSetMetadata: 100}}\n"
    )
    # The table sits beside manifests/, outside the manifest's folder: refused, then moved.
    monkeypatch.chdir(tmp_path)
    endpoint = ["--endpoint", local.url]
    runner = CliRunner()
    assert runner.invoke(cli, [*endpoint, "plan"]).exit_code == 1
    (tmp_path / "ris-fixes.csv").rename(tmp_path / "manifests" / "ris-fixes.csv")
    text = (tmp_path / "manifests" / "ris.yaml").read_text().replace("../ris-fixes", "ris-fixes")
    (tmp_path / "manifests" / "ris.yaml").write_text(text)
    planned = runner.invoke(cli, [*endpoint, "plan", "-o", "json"])
    assert planned.exit_code == 0, planned.output
    plan = json.loads(planned.output)
    updates = [i for i in plan["image_sets"] if i["action"] == "update"]
    assert len(updates) == len(studies)
    assert sum(len(i["payloads"]) for i in updates) == len(studies)
    applied = runner.invoke(cli, [*endpoint, "apply", "--auto-approve"])
    assert applied.exit_code == 0, applied.output
    for n, uid in enumerate(studies):
        (image_set,) = by_study[uid]
        live = metadata(client, SEED_DATASTORE_ID, image_set)
        assert live["Study"]["DICOM"]["StudyDescription"] == f"FIXED {n}"
    again = runner.invoke(cli, [*endpoint, "plan", "--detailed-exitcode"])
    assert again.exit_code == 0, again.output


def test_the_json_schema_knows_the_table_kind() -> None:
    """What an editor checks against: the shipped schema file, with plain jsonschema."""
    import yaml
    from jsonschema import Draft202012Validator

    from reconciler.manifest import schema_build

    validator = Draft202012Validator(json.loads(schema_build.SCHEMA_PATH.read_text()))
    document = yaml.safe_load(TABLE)
    assert list(validator.iter_errors(document)) == []
    document["spec"]["tabel"] = document["spec"].pop("table")
    assert {e.validator for e in validator.iter_errors(document)} >= {"required"}
    plain = {**document, "kind": "ImageSetMetadata"}
    assert list(validator.iter_errors(plain))  # a table spec is no ImageSetMetadata spec


def plain_manifest(folder: Path, *, name: str, accession: str, patient: str, study: str) -> None:
    """An ordinary manifest beside the table (other.yaml): the table's template, filled."""
    text = (
        TABLE.replace("kind: ImageSetMetadataTable", "kind: ImageSetMetadata")
        .replace("name: ris-fixes,", f"name: {name},")
        .replace("  table: ris-fixes.csv\n", "")
    )
    filled = {"{Accession}": accession, "{Name}": patient, "{Description}": study}
    for placeholder, value in filled.items():
        text = text.replace(f'"{placeholder}"', value)
    (folder / "other.yaml").write_text(text)


def test_a_row_named_like_another_manifest_is_a_duplicate(tmp_path: Path) -> None:
    write(tmp_path, "Accession,Name,Description\nA1,X,Y\nA2,X,Y\n")
    plain_manifest(tmp_path, name="ris-fixes-3", accession="B9", patient="Y", study="Z")
    result = load_tree([tmp_path])
    shown = [str(p).replace(f"{tmp_path.as_posix()}/", "") for p in result.errors]
    assert shown == [
        "ris-fixes.csv:3:1: error: duplicate name 'ris-fixes-3': already used at "
        "other.yaml:3:18; metadata.name is unique across the manifest tree (plans and "
        "journals refer to manifests by it) [duplicate-name]"
    ]


def test_a_row_and_a_manifest_with_one_selector_conflict(tmp_path: Path) -> None:
    write(tmp_path, "Accession,Name,Description\nA1,X,Y\nA2,X,Y\n")
    plain_manifest(tmp_path, name="by-hand", accession="A2", patient="OTHER", study="Y")
    result = load_tree([tmp_path])
    codes = sorted(
        (str(p.location).replace(f"{tmp_path.as_posix()}/", ""), p.code) for p in result.problems
    )
    assert codes == [("ris-fixes.csv:3:4", "conflict"), ("ris-fixes.csv:3:6", "shared-ownership")]


def test_rows_are_built_when_asked_for_and_match_the_whole_pipeline(tmp_path: Path) -> None:
    rows = "".join(f"A{n},DOE^JANE^{n},CT {n}\n" for n in range(1, 2001))
    result = load_tree([write(tmp_path, "Accession,Name,Description\n" + rows)])
    assert result.ok and len(result.manifests) == 2000
    last = result.manifests[-1]
    assert (last.name, str(last.selector), str(last.location)) == (
        "ris-fixes-2001",
        "accessionNumber=A2000",
        f"{tmp_path.as_posix()}/ris-fixes.csv:2001:1",
    )
    assert [m.name for m in result.manifests][:2] == ["ris-fixes-2", "ris-fixes-3"]


def test_a_template_the_cell_checks_do_not_cover_goes_the_whole_way(tmp_path: Path) -> None:
    private = TABLE.replace(
        'Study: {StudyDescription: "{Description}"}',
        'Study: {StudyDescription: "{Description}"}\n'
        '    Series: {"1.2.3": {Instances: {"1.2.3.4": {"00191001": {value: "{Name}", vr: LO}}}}}\n'
        "  force: true",
    )
    result = load_tree([write(tmp_path, "Accession,Name,Description\nA1,X,Y\n", private)])
    assert result.ok, [str(p) for p in result.problems]
    (only,) = result.manifests
    assert {s.key: s.value for s in only.sets}["00191001"] == "X"


COMPILED_TEMPLATES = {
    "values and a ticket": TABLE.replace(
        "metadata: {name: ris-fixes, labels: {source: ris}}",
        "metadata:\n  name: ris-fixes\n  labels: {source: ris}\n"
        '  annotations: {reason: "RIS fix", ticket: "T-{Accession}"}',
    ),
    "series and instance keys, numbers, literals and removals": """\
apiVersion: reconciler/v1
kind: ImageSetMetadataTable
metadata: {name: series-fixes}
spec:
  datastoreId: cfd19b7ba6feae7f6669c119e1af3a46
  table: ris-fixes.csv
  selector: {studyInstanceUID: "{Study}"}
  force: true
  set:
    Study: {StudyDescription: "CT {Description} (fixed)", ReferringPhysicianName: "DR^WHO"}
    Series:
      "{Series}":
        SeriesNumber: "{Number}"
        Instances: {"{Sop}": {InstanceNumber: "{Number}"}}
  remove:
    Study: [AdmittingDiagnosesDescription]
    Series: {"1.2.3": {attributes: [SeriesDescription]}}
""",
}
COMPILED_ROWS = {
    "values and a ticket": "Accession,Name,Description,Note\n"
    'A1,DOE^JANE,CT HEAD,\r\nA2,"DOE, JOHN","MR ""KNEE""",x\n\nA3,X,Y,"two\nlines"\nA4,Y,Z,\n'
    "A5,MÜLLER^JÖRG,CT ÉPAULE 肩,",
    "series and instance keys, numbers, literals and removals": "Study,Series,Sop,Number,"
    "Description\n1.2.840.1,1.2.840.1.1,1.2.840.1.1.1,7,HEAD\n"
    '1.2.840.2,1.2.840.2.1,1.2.840.2.1.1, 12 ,"CHEST, LOW DOSE"\n',
}


@pytest.mark.parametrize("shape", sorted(COMPILED_TEMPLATES))
def test_rows_made_from_their_cells_are_the_rows_the_whole_pipeline_makes(
    tmp_path: Path, shape: str
) -> None:
    """Rows that passed the cell checks are made without a row document (the compiled
    way, for speed at 100,000 rows): exactly what the whole pipeline makes, positions,
    digests and reasons included, quoted and multi-line cells too."""
    path = write(tmp_path, COMPILED_ROWS[shape], COMPILED_TEMPLATES[shape])
    result = load_tree([path])
    assert result.ok, [str(p) for p in result.problems]
    (table,) = result.manifests.tables  # type: ignore[attr-defined]
    assert table.compiled is not None and all(table.checked)
    # Digests from the template's canonical text, unless a key holds a {Column}.
    assert (table.compiled._text is not None) == (shape == "values and a ticket")
    compiled = list(result.manifests)
    identities, whys = list(result.manifests.identities()), list(result.manifests.whys())  # type: ignore[attr-defined]
    table.compiled = None  # the whole way from here
    assert list(result.manifests) == compiled
    assert [(m.labels, m.annotations) for m in result.manifests] == [
        (m.labels, m.annotations) for m in compiled
    ]
    assert list(result.manifests.identities()) == identities  # type: ignore[attr-defined]
    assert list(result.manifests.whys()) == whys  # type: ignore[attr-defined]
    assert len(compiled) == {"values and a ticket": 5}.get(shape, 2)


def test_a_template_the_compiled_way_gets_wrong_is_made_the_whole_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compiled way is checked against the whole pipeline on the first row and
    every so many after: a difference turns it off, nothing else changes."""
    from reconciler.manifest import rowmanifest

    real = rowmanifest.CompiledRows.manifest

    def off_by_one(self: Any, cells: list[str], line: int, where: dict[str, int]) -> Any:
        return real(self, cells, line + 1, where)

    monkeypatch.setattr(rowmanifest.CompiledRows, "manifest", off_by_one)
    result = load_tree([write(tmp_path, "Accession,Name,Description\nA1,X,Y\nA2,Z,W\n")])
    assert result.ok
    (table,) = result.manifests.tables  # type: ignore[attr-defined]
    assert table.compiled is None
    assert [m.name for m in result.manifests] == ["ris-fixes-2", "ris-fixes-3"]
