"""HealthImaging's throttling quotas per operation, as AWS has published them.

One table, with its source: the "AWS HealthImaging throttling limits" page of the
developer guide, https://docs.aws.amazon.com/healthimaging/latest/devguide/throttling-limits.html
(rate in requests per second, burst in requests). The page has shown different defaults
over time, and shows two today: its HTML rendering keeps every image-set write at
0.25/s burst 1, while its Markdown source (throttling-limits.md, the newer text) lists
UpdateImageSetMetadata at 10/s burst 40 and StartDICOMImportJob at 40/s burst 80. The
newest source is the default (``fast-updates``); each published version is a
*profile*, selectable by name (``EmulatorConfig.quota_profile``, ``reconciler emulator
serve --quota-profile``, the ``quota_profile`` setting of ``POST /_emulator/settings``);
single operations can be overridden on top (``quota_overrides`` / ``--quota
OP=RATE/BURST``). Every account may have any of them raised through AWS Support, so
no profile is "the" quota.
"""

from __future__ import annotations

import re
from typing import Any

from reconciler.emulator.exceptions import ValidationException

Quota = tuple[float, int]  # (requests per second, burst)

SOURCE = "https://docs.aws.amazon.com/healthimaging/latest/devguide/throttling-limits.html"

# The page as most of its versions (and its translations) show it.
_STANDARD: dict[str, Quota] = {
    "CreateDatastore": (0.085, 1),
    "GetDatastore": (10.0, 20),
    "ListDatastores": (5.0, 10),
    "DeleteDatastore": (0.085, 1),
    "StartDICOMImportJob": (1.0, 2),
    "GetDICOMImportJob": (25.0, 50),
    "ListDICOMImportJobs": (10.0, 20),
    "SearchImageSets": (25.0, 50),
    "GetImageSet": (25.0, 50),
    "GetImageSetMetadata": (50.0, 100),
    "GetImageFrame": (1000.0, 2000),
    "ListImageSetVersions": (25.0, 50),
    "UpdateImageSetMetadata": (0.25, 1),
    "CopyImageSet": (0.25, 1),
    "DeleteImageSet": (0.25, 1),
    "TagResource": (10.0, 20),
    "ListTagsForResource": (10.0, 20),
    "UntagResource": (10.0, 20),
}
# The page's rows for HealthImaging's DICOMweb (dicomweb/; not in botocore's model), the
# same on every version of the page. Its search and store actions have no row.
DICOMWEB: dict[str, Quota] = {
    "GetDICOMInstance": (50.0, 100),
    "GetDICOMInstanceMetadata": (50.0, 100),
    "GetDICOMInstanceFrames": (50.0, 100),
    "GetDICOMSeriesMetadata": (50.0, 100),
}
_STANDARD.update(DICOMWEB)

PROFILES: dict[str, dict[str, Quota]] = {
    # Most versions of the page, and its HTML rendering today: every write to an image
    # set at 0.25/s, burst 1.
    "standard": dict(_STANDARD),
    # An earlier version of the page: StartDICOMImportJob at 0.25/s, burst 1 too.
    "early-import": {**_STANDARD, "StartDICOMImportJob": (0.25, 1)},
    # The page's newest version (its Markdown source,
    # https://docs.aws.amazon.com/healthimaging/latest/devguide/throttling-limits.md):
    # UpdateImageSetMetadata 10/s burst 40, StartDICOMImportJob 40/s burst 80. Operations
    # whose rows that version does not change keep the standard values (CopyImageSet and
    # DeleteImageSet among them: 0.25/s burst 1).
    "fast-updates": {
        **_STANDARD,
        "StartDICOMImportJob": (40.0, 80),
        "UpdateImageSetMetadata": (10.0, 40),
    },
}
DEFAULT_PROFILE = "fast-updates"  # the newest published version

# An operation the table does not name (none today) gets the tagging quotas.
FALLBACK: Quota = (10.0, 20)

_OVERRIDE = re.compile(r"^([A-Za-z]+)=([0-9]*\.?[0-9]+)/([0-9]+)$")


def profile(name: str) -> dict[str, Quota]:
    """The quotas of the published profile ``name``; a ValidationException names the others."""
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise ValidationException(f"unknown quota profile {name!r} (known: {known})") from None


def resolve(name: str, overrides: dict[str, Quota]) -> dict[str, Quota]:
    """Profile ``name`` with ``overrides`` on top: the quotas a server enforces."""
    return {**profile(name), **overrides}


def parse_override(text: str) -> tuple[str, Quota]:
    """``"UpdateImageSetMetadata=10/40"`` → ``("UpdateImageSetMetadata", (10.0, 40))``."""
    match = _OVERRIDE.match(text.strip())
    if not match:
        raise ValidationException(
            f"quota override {text!r} is not OPERATION=RATE/BURST"
            " (e.g. UpdateImageSetMetadata=10/40)"
        )
    name, rate, burst = match.group(1), float(match.group(2)), int(match.group(3))
    return name, check_override(name, [rate, burst])


def check_override(name: str, value: Any) -> Quota:
    """One override from JSON (``[rate, burst]``), checked against the known operations."""
    if name not in _STANDARD:
        raise ValidationException(f"quota override for unknown operation {name!r}")
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value)
    ):
        raise ValidationException(f"quota override for {name} must be [rate, burst]")
    rate, burst = float(value[0]), int(value[1])
    if rate <= 0 or burst < 1:
        raise ValidationException(f"quota override for {name}: rate must be > 0, burst >= 1")
    return rate, burst
