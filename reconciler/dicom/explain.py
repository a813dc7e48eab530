"""``explain``: everything the project knows about one attribute, from its own tables.

Nothing here is typed by hand: the tag, VR, VM and retirement come from pydicom's data
dictionary, the level from the service's normalization list (``ahi_levels.json``), the
force and primary rules from :mod:`reconciler.dicom.rules`, PHI from
:mod:`reconciler.dicom.phi`, and the example value from pydicom's own sample files
(the first value there that fits the VR), so it is a value real data carries.
"""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.dicom.dictionary import (
    is_multi_valued,
    is_private_tag,
    keyword_for_tag,
    lookup,
    suggest,
    tag_for_keyword,
)
from reconciler.dicom.levels import Level, level_of
from reconciler.dicom.phi import is_phi
from reconciler.dicom.rules import NEVER_UPDATABLE, UID_KEYWORDS, force_reason
from reconciler.dicom.vr import check_value
from reconciler.errors import ReconcilerError

if TYPE_CHECKING:
    import pydicom

_TAG_FORMS = re.compile(r"^\(?([0-9A-Fa-f]{4})[,\s]?([0-9A-Fa-f]{4})\)?$")


@dataclass(frozen=True)
class Explanation:
    """What ``reconciler explain`` prints, as data (``-o json``/``yaml`` dump it as is)."""

    keyword: str | None  # None for a private tag
    tag: str  # 8 upper-case hex digits
    vr: str | None  # None for a private tag: the manifest must give it
    vm: str | None
    retired: bool
    level: str
    updatable: bool
    needs_force: str | None  # why, or None
    phi: bool
    on_primary: str  # "yes", or why not
    example: Any
    example_source: str | None
    manifest_place: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _parse(term: str) -> tuple[str | None, int | None]:
    """A keyword or a tag in any of the usual spellings → (keyword, tag number)."""
    text = term.strip()
    match = _TAG_FORMS.match(text)
    if match:
        number = int(match.group(1) + match.group(2), 16)
        return keyword_for_tag(number) or None, number
    return text, tag_for_keyword(text)


def _place(level: Level, key: str) -> str:
    return {
        Level.PATIENT: f"spec.set.Patient.{key}",
        Level.STUDY: f"spec.set.Study.{key}",
        Level.SERIES: f"spec.set.Series.<SeriesInstanceUID>.{key}",
        Level.INSTANCE: f"spec.set.Series.<SeriesInstanceUID>.Instances.<SOPInstanceUID>.{key}",
    }[level]


def _on_primary(keyword: str, level: Level) -> str:
    if keyword in UID_KEYWORDS:
        return "no: the UIDs of a primary image set never change, not even with force"
    if level in (Level.PATIENT, Level.SERIES):
        return (
            f"no: HealthImaging does not update {level.value}-level metadata of a primary "
            "image set; plan and apply with --replace-primary"
        )
    return "yes"


def _document_value(value: Any, vr: str) -> Any:
    """A pydicom element value in the encoding of a metadata document (AHI.md)."""
    from pydicom.multival import MultiValue  # pydicom only when explaining (slow import)

    if isinstance(value, MultiValue):
        return [_document_value(v, vr) for v in value]
    if vr in ("US", "UL", "SS", "SL", "UV", "SV"):
        return int(value)
    if vr in ("FL", "FD"):
        return float(value)
    return str(value)


@cache
def _sample_datasets() -> tuple[tuple[str, pydicom.Dataset], ...]:
    """pydicom's bundled sample files, read once without pixel data (listed directly:
    ``get_testdata_files`` may try the network)."""
    import pydicom.data
    from pydicom.errors import InvalidDicomError

    module_file = pydicom.data.__file__
    if module_file is None:
        return ()
    found = []
    pydicom_log = logging.getLogger("pydicom")
    level = pydicom_log.level
    pydicom_log.setLevel(logging.ERROR)  # the samples' oddities are not the user's business
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for path in sorted((Path(module_file).parent / "test_files").glob("*.dcm")):
                try:
                    found.append((path.name, pydicom.dcmread(path, stop_before_pixels=True)))
                except (InvalidDicomError, OSError, ValueError, AttributeError, KeyError):
                    continue  # a sample pydicom cannot read is no example
    finally:
        pydicom_log.setLevel(level)
    return tuple(found)


def example_value(keyword: str, vr: str) -> tuple[Any, str | None]:
    """The first value of ``keyword`` in pydicom's sample files that fits ``vr``."""
    if vr == "SQ" or " or " in vr:
        return None, None
    for name, dataset in _sample_datasets():
        try:
            raw = dataset[keyword].value if keyword in dataset else None
            value = None if raw in (None, "", b"") else _document_value(raw, vr)
        except (TypeError, ValueError, KeyError, AttributeError):
            continue  # an element pydicom cannot decode is no example
        if value is None:
            continue
        if check_value(vr, value) is None:
            return value, f"pydicom sample file {name}"
    return None, None


def explain(term: str) -> Explanation:
    """Explain a keyword (``PatientName``) or tag (``00100010``, ``(0010,0010)``)."""
    keyword, number = _parse(term)
    if number is not None and is_private_tag(f"{number:08X}"):
        tag = f"{number:08X}"
        return Explanation(
            keyword=None, tag=tag, vr=None, vm=None, retired=False,
            level=Level.INSTANCE.value, updatable=True,
            needs_force=f"{tag} is a private tag", phi=is_phi(tag),
            on_primary="yes", example=None, example_source=None,
            manifest_place=_place(Level.INSTANCE, tag) + ": {value: ..., vr: ..}",
        )  # fmt: skip
    attribute = lookup(keyword) if keyword else None
    if attribute is None:
        hints = suggest(term) if keyword else []
        hint = f"; did you mean {', '.join(hints)}?" if hints else ""
        raise ReconcilerError(f"{term!r} is neither a DICOM keyword nor a tag{hint}")
    level = level_of(attribute.keyword)
    example, source = example_value(attribute.keyword, attribute.vr)
    needs = force_reason(attribute.keyword, example, check_form=False)
    if needs is None and is_multi_valued(attribute.vm):
        needs = f"{attribute.keyword} is multi-valued (VM {attribute.vm})"
    return Explanation(
        keyword=attribute.keyword,
        tag=attribute.tag,
        vr=attribute.vr,
        vm=attribute.vm,
        retired=attribute.retired,
        level=level.value,
        updatable=attribute.keyword not in NEVER_UPDATABLE,
        needs_force=needs,
        phi=is_phi(attribute.keyword),
        on_primary=_on_primary(attribute.keyword, level),
        example=example,
        example_source=source,
        manifest_place=_place(level, attribute.keyword),
    )
