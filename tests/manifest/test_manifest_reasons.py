"""Reasons on changes: metadata.annotations reason and ticket, checked like values for
PHI, per row in tables, and carried into plans, saved plans and run records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine.context import Source, sources_of
from reconciler.manifest import load_tree
from reconciler.manifest.reasons import phi_in_text

DOC = """\
apiVersion: reconciler/v1
kind: ImageSetMetadata
metadata:
  name: fix
  annotations:
    reason: {reason}
    ticket: {ticket}
spec:
  datastoreId: cfd19b7ba6feae7f6669c119e1af3a46
  selector: {{imageSetId: b537144549630a4b5c6386f265599afc}}
  set:
    Patient: {{PatientName: "SMITH^ANNA", PatientID: "MRN0042"}}
"""


def lines(tmp_path: Path, reason: str, ticket: str = "HIM-1") -> list[str]:
    path = tmp_path / "fix.yaml"
    path.write_text(DOC.format(reason=json.dumps(reason), ticket=json.dumps(ticket)))
    result = load_tree([path])
    return [str(p).replace(tmp_path.as_posix() + "/", "") for p in result.problems]


@pytest.mark.parametrize(
    ("reason", "what"),
    [
        ("was DOE^JANE before", "a name in DICOM form"),
        ("the MRN0042 of the EMR", "a value this manifest writes to a PHI attribute"),
        ("born 1970-01-31", "a date"),
        ("born 31.01.1970", "a date"),
        ("MRN 12345678 was wrong", "a long number"),
        ("asked by jane.doe@example.org", "an e-mail address"),
        ("called back on +1 (555) 123-4567", "a phone number"),
        ("SSN 123-45-6789 on the requisition", "a social security number"),
    ],
)
def test_a_reason_that_holds_phi_is_an_error_at_its_line(
    tmp_path: Path, reason: str, what: str
) -> None:
    [problem] = lines(tmp_path, reason)
    assert problem.startswith("fix.yaml:6:13: error: the reason seems to hold PHI (")
    assert what in problem and problem.endswith("[reason-phi]")
    assert reason not in problem  # the message never repeats what it found


@pytest.mark.parametrize(
    "reason",
    [
        "name registered as a study label",
        "scanner-local ID replaced by the enterprise MRN",
        "series 1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322 relabelled",  # a UID is no MRN
        "fixed in release 2.4 after 3 reports",
    ],
)
def test_ordinary_reasons_pass(tmp_path: Path, reason: str) -> None:
    assert lines(tmp_path, reason) == []


def test_a_ticket_is_checked_too_and_lengths_are_bounded(tmp_path: Path) -> None:
    [ticket] = lines(tmp_path, "ok", ticket="MRN 12345678")
    assert ticket.startswith("fix.yaml:7:13: error: the ticket seems to hold PHI")
    [long] = lines(tmp_path, "x" * 501)
    assert long == (
        "fix.yaml:6:13: error: the reason is 501 characters long; at most 500 (link the "
        "ticket for the details) [reason]"
    )


def test_manifests_expose_their_reason_and_ticket(tmp_path: Path) -> None:
    path = tmp_path / "fix.yaml"
    path.write_text(DOC.format(reason='"  "', ticket="HIM-7"))
    [manifest] = load_tree([path]).manifests
    assert (manifest.why.reason, manifest.why.ticket, manifest.why.given) == (None, "HIM-7", True)


TABLE = """\
apiVersion: reconciler/v1
kind: ImageSetMetadataTable
metadata:
  name: ris
  annotations: {reason: RIS reconciliation, ticket: "{Ticket}"}
spec:
  datastoreId: cfd19b7ba6feae7f6669c119e1af3a46
  table: ris.csv
  selector: {accessionNumber: "{Accession}"}
  set:
    Study: {StudyDescription: "{Description}"}
"""


def test_table_rows_carry_their_own_ticket_checked_at_the_cell(tmp_path: Path) -> None:
    (tmp_path / "ris.yaml").write_text(TABLE)
    (tmp_path / "ris.csv").write_text(
        "Accession,Description,Ticket\nA1,CT HEAD,RIS-1\nA2,MR KNEE,\nA3,CT CHEST,19700131\n"
    )
    result = load_tree([tmp_path / "ris.yaml"])
    by_name: dict[str, Any] = {m.name: m.why for m in result.manifests}
    assert by_name["ris-2"].ticket == "RIS-1" and by_name["ris-2"].reason == "RIS reconciliation"
    assert by_name["ris-3"].ticket is None  # an empty cell: no ticket for that row
    [problem] = [str(p).replace(tmp_path.as_posix() + "/", "") for p in result.problems]
    assert problem.startswith("ris.csv:4:13: error: the ticket seems to hold PHI (a date)")


def test_phi_in_text_names_the_kind_never_the_value() -> None:
    assert phi_in_text("fine") is None
    assert phi_in_text("renamed DOE^JANE") == "a name in DICOM form (FAMILY^GIVEN)"
    assert phi_in_text("value X9Y8 was wrong", ["X9Y8"]) == (
        "a value this manifest writes to a PHI attribute"
    )


def test_a_rows_reason_quoting_the_patient_value_that_row_writes_is_refused(
    tmp_path: Path,
) -> None:
    """Rows checked cell by cell (the table's fast way) still refuse a reason that
    quotes a PHI value the same row writes, as a row's own document would be."""
    (tmp_path / "ris.yaml").write_text(
        TABLE.replace('reason: RIS reconciliation, ticket: "{Ticket}"', 'reason: "was {Old}"')
        .replace("StudyDescription", "PatientID")
        .replace("{Description}", "{Id}")
        .replace("Study:", "Patient:")
    )
    # The first row is checked both ways; the second only cell by cell.
    (tmp_path / "ris.csv").write_text("Accession,Old,Id\nA1,R-1,ZZ17C\nA2,QX17B,QX17B\n")
    result = load_tree([tmp_path / "ris.yaml"])
    shown = [str(p).replace(tmp_path.as_posix() + "/", "") for p in result.problems]
    assert [p.split(": error: ")[0] for p in shown] == ["ris.csv:3:4"]
    assert "a value this manifest writes to a PHI attribute" in shown[0]
    assert "QX17B" not in shown[0]


@pytest.mark.parametrize("notes", [True, False])
def test_a_tables_sources_are_its_rows_manifests_without_building_them(
    tmp_path: Path, notes: bool
) -> None:
    text = (
        TABLE
        if notes
        else TABLE.replace('  annotations: {reason: RIS reconciliation, ticket: "{Ticket}"}\n', "")
    )
    (tmp_path / "ris.yaml").write_text(text)
    (tmp_path / "ris.csv").write_text("Accession,Description,Ticket\nA1,CT HEAD,RIS-1\nA2,MR,\n")
    manifests = load_tree([tmp_path / "ris.yaml"]).manifests
    built = {m.name: Source(m.name, m.location, m.why) for m in list(manifests)}
    assert sources_of(manifests) == built
    assert (built["ris-2"].why.ticket is not None) == notes


def test_a_tables_sources_are_found_by_name_past_blank_lines_and_other_manifests(
    tmp_path: Path,
) -> None:
    """A plan keeps its sources as a view of the table: a row's is made when a renderer,
    a policy or the audit trail asks for it by name, not held for every row."""
    (tmp_path / "ris.yaml").write_text(TABLE)
    rows = "\n".join(f"A{n},CT {n},RIS-{n}" + "\n" * (n % 3 == 0) for n in range(40))
    (tmp_path / "ris.csv").write_text(f"Accession,Description,Ticket\n{rows}\n")
    (tmp_path / "fix.yaml").write_text(DOC.format(reason='"a plain manifest"', ticket="HIM-1"))
    manifests = load_tree([tmp_path]).manifests
    built = {m.name: Source(m.name, m.location, m.why) for m in list(manifests)}
    sources = sources_of(manifests)
    assert not isinstance(sources, dict)
    assert len(sources) == len(built) == 41
    assert list(sources) == list(built)
    for name, source in built.items():
        assert sources[name] == source
    for missing in ("ris-1", "ris-999", "ris-x", "ris", "fix-2", "other-3"):
        assert missing not in sources
        assert sources.get(missing) is None
