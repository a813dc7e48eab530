"""Refresh the per-level keyword lists in ``schema.json`` from ``ahi_levels.json``.

The schema lists the Patient, Study and Series keywords of HealthImaging's
normalization table as ``properties`` so editors can complete and describe them (they
still accept any keyword: the validator, not the editor, says which level is right).
Run ``python -m reconciler.manifest.schema_build`` after ``ahi_levels.json`` changes;
a test fails while the two disagree.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from pydicom import datadict

from reconciler.dicom.dictionary import lookup
from reconciler.dicom.levels import Level, keywords_at

SCHEMA_PATH = Path(__file__).with_name("schema.json")
_DEFS = {
    Level.PATIENT: "patientAttributes",
    Level.STUDY: "studyAttributes",
    Level.SERIES: "seriesAttributes",
}


def _describe(keyword: str) -> str:
    attribute = lookup(keyword)
    if attribute is None:  # the levels table is checked against the dictionary elsewhere
        return keyword
    name = datadict.dictionary_description(int(attribute.tag, 16))
    return f"{name} ({attribute.tag[:4]},{attribute.tag[4:]}), VR {attribute.vr}"


def build(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with each level's keyword properties regenerated."""
    result = copy.deepcopy(schema)
    for level, name in _DEFS.items():
        properties = result["$defs"][name]["properties"]
        kept = {k: v for k, v in properties.items() if "$ref" not in v or k == "Instances"}
        generated = {
            keyword: {"$ref": "#/$defs/value", "description": _describe(keyword)}
            for keyword in keywords_at(level)
        }
        result["$defs"][name]["properties"] = {**kept, **generated}
    return result


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    current = json.loads(SCHEMA_PATH.read_text("utf-8"))
    SCHEMA_PATH.write_text(render(build(current)), "utf-8")


if __name__ == "__main__":
    main()
