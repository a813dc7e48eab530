"""``"*"`` series/instance keys: expanded per image set, planned on concrete instances."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from builders import SOPS, S, drop, manifest, put
from click.testing import CliRunner
from conftest import USDOPPLER, make_client, metadata, put_document

from reconciler.cli import cli
from reconciler.dicom.levels import Level
from reconciler.engine.changes import ChangeOp
from reconciler.engine.diff import diff_image_set
from reconciler.engine.projection import prune
from reconciler.manifest import load_tree

TAG = "7FDD1090"  # a private tag every instance of USDOPPLER carries


def test_a_wildcard_removal_plans_every_instance() -> None:
    wanted = manifest(drop(Level.INSTANCE, TAG, "*", "*"), force=True)
    diff = diff_image_set(USDOPPLER, [wanted], is_primary=False)
    assert not diff.problems
    assert [(c.op, c.sop_uid, c.key) for c in diff.changes] == [
        (ChangeOp.REMOVE, sop, TAG) for sop in sorted(SOPS)
    ]


def test_the_projection_keeps_what_a_wildcard_owns() -> None:
    wanted = manifest(drop(Level.INSTANCE, TAG, "*", "*"), force=True)
    projection = prune(USDOPPLER, [wanted])
    assert diff_image_set(projection, [wanted], is_primary=False) == diff_image_set(
        USDOPPLER, [wanted], is_primary=False
    )


def test_a_concrete_key_of_the_same_manifest_wins_over_its_wildcard() -> None:
    wanted = manifest(
        put(Level.INSTANCE, "ImageComments", "ALL", "*", "*"),
        put(Level.INSTANCE, "ImageComments", "FIRST", S, SOPS[0]),
    )
    diff = diff_image_set(USDOPPLER, [wanted], is_primary=False)
    after = {c.sop_uid: c.after for c in diff.changes}
    assert after[SOPS[0]] == "FIRST"
    assert {after[sop] for sop in SOPS[1:]} == {"ALL"}


def test_another_manifest_on_an_expanded_address_is_a_conflict() -> None:
    every = manifest(put(Level.INSTANCE, "ImageComments", "ALL", "*", "*"), name="every")
    one = manifest(put(Level.INSTANCE, "ImageComments", "ONE", S, SOPS[2]), name="one")
    diff = diff_image_set(USDOPPLER, [every, one], is_primary=False)
    # Both sides are held (a conflict never sends either value), each naming the other.
    assert [p.message.split(":")[0] for p in diff.problems] == ["conflict", "conflict"]
    assert {p.manifest for p in diff.problems} == {"one", "every"}
    assert all("'one'" in p.message and "'every'" in p.message for p in diff.problems)


def _doc(series: int, instances: int) -> dict[str, Any]:
    """An image set of ``series`` × ``instances``, each instance with one private tag."""
    doc = copy.deepcopy(USDOPPLER)
    template = next(iter(doc["Study"]["Series"][S]["Instances"].values()))
    doc["Study"]["Series"] = {
        f"1.2.3.{s}": {
            "DICOM": {"SeriesInstanceUID": f"1.2.3.{s}", "SeriesDescription": f"S{s}"},
            "Instances": {
                f"1.2.3.{s}.{i}": {
                    **copy.deepcopy(template),
                    "DICOM": {**template["DICOM"], "SOPInstanceUID": f"1.2.3.{s}.{i}",
                              "00191010": "VENDOR"},
                    "DICOMVRs": {"00191010": "LO"},
                }
                for i in range(1, instances + 1)
            },
        }
        for s in range(1, series + 1)
    }  # fmt: skip
    return doc


def test_removing_a_private_tag_from_15_instances_end_to_end(
    local: Any, datastore: str, tmp_path: Path, monkeypatch: Any
) -> None:
    image_set = "a" * 32
    put_document(local, datastore, _doc(3, 5), image_set)
    (tmp_path / "m.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: ImageSetMetadata\nmetadata: {name: clean-vendor-tag}\n"
        f"spec:\n  datastoreId: {datastore}\n  selector: {{imageSetId: {image_set}}}\n"
        '  force: true\n  remove:\n    Series:\n      "*":\n        Instances:\n'
        '          "*": {attributes: ["00191010"]}\n'
    )
    assert load_tree([tmp_path / "m.yaml"]).ok
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    endpoint = ["--endpoint", local.url]
    planned = runner.invoke(cli, [*endpoint, "plan", "m.yaml", "-o", "json"])
    assert planned.exit_code == 0, planned.output
    changes = json.loads(planned.output)["image_sets"][0]["changes"]
    assert sorted(c["instance"] for c in changes) == sorted(
        f"1.2.3.{s}.{i}" for s in range(1, 4) for i in range(1, 6)
    )
    applied = runner.invoke(cli, [*endpoint, "apply", "m.yaml", "--auto-approve"])
    assert applied.exit_code == 0, applied.output
    client = make_client(local.url)
    live = metadata(client, datastore, image_set)
    instances = [i for s in live["Study"]["Series"].values() for i in s["Instances"].values()]
    assert len(instances) == 15
    assert not any("00191010" in i["DICOM"] for i in instances)
    again = runner.invoke(cli, [*endpoint, "plan", "m.yaml", "--detailed-exitcode"])
    assert again.exit_code == 0, again.output
