"""The problem codes ``reconciler validate`` prints in brackets, each with what it means.

Codes are stable identifiers (CI scripts and docs refer to them); messages may improve.
docs/manifests.md's table of problem codes is this dictionary.
"""

from __future__ import annotations

from typing import Final

# Files and YAML
FILE_MISSING: Final = "file-missing"
FILE_UNREADABLE: Final = "file-unreadable"
FILE_TOO_LARGE: Final = "file-too-large"
FILE_BINARY: Final = "file-binary"
FILE_ENCODING: Final = "file-encoding"
FILE_EMPTY: Final = "file-empty"
NO_MANIFESTS: Final = "no-manifests"
YAML_SYNTAX: Final = "yaml-syntax"
YAML_TAB: Final = "yaml-tab"
YAML_DUPLICATE_KEY: Final = "yaml-duplicate-key"
YAML_KEY: Final = "yaml-key"
YAML_TAG: Final = "yaml-tag"
YAML_ALIAS: Final = "yaml-alias"
YAML_LIMIT: Final = "yaml-limit"
# Structure (JSON Schema)
SCHEMA_UNKNOWN_KEY: Final = "unknown-key"
SCHEMA_MISSING_KEY: Final = "missing-key"
SCHEMA_TYPE: Final = "wrong-type"
SCHEMA_VALUE: Final = "bad-value"
SCHEMA_SELECTOR: Final = "selector"
# DICOM and HealthImaging
KEYWORD_UNKNOWN: Final = "unknown-keyword"
KEYWORD_RETIRED: Final = "retired-keyword"
WRONG_LEVEL: Final = "wrong-level"
VALUE_VR: Final = "value-vr"
NEEDS_FORCE: Final = "needs-force"
FORCE_UNUSED: Final = "force-unused"
NEVER_UPDATABLE: Final = "never-updatable"
PRIVATE_TAG: Final = "private-tag"
BAD_IDENTIFIER: Final = "bad-identifier"
REMOVE_AND_SET: Final = "remove-and-set"
REMOVE_TWICE: Final = "remove-twice"
WILDCARD_ENTIRE: Final = "wildcard-entire"
TABLE: Final = "table"
NO_DATASTORE: Final = "no-datastore"
NOTHING_MANAGED: Final = "nothing-managed"
REASON: Final = "reason"
REASON_PHI: Final = "reason-phi"
# Across manifests
CONFLICT: Final = "conflict"
SHARED_OWNERSHIP: Final = "shared-ownership"
DUPLICATE_NAME: Final = "duplicate-name"
# reconciler.yaml
PROJECT: Final = "project-file"
POLICY: Final = "policy"

DESCRIPTIONS: Final[dict[str, str]] = {
    FILE_MISSING: "a path given on the command line does not exist",
    FILE_UNREADABLE: "the file could not be read (permissions, a device, ...)",
    FILE_TOO_LARGE: "the file is larger than 1 MiB; split it into several files",
    FILE_BINARY: "the file is not text (it contains NUL bytes or is UTF-16/32)",
    FILE_ENCODING: "the file is not valid UTF-8",
    FILE_EMPTY: "warning: the file holds no YAML document",
    NO_MANIFESTS: "warning: a folder holds no *.yaml or *.yml file",
    YAML_SYNTAX: "the YAML does not parse",
    YAML_TAB: "a tab is used for indentation; YAML indents with spaces",
    YAML_DUPLICATE_KEY: "a key appears twice in one mapping (YAML would silently keep the last)",
    YAML_KEY: "a mapping key is a list or mapping instead of text",
    YAML_TAG: "an explicit YAML tag (!!python/..., !!binary, ...) that manifests do not allow",
    YAML_ALIAS: "an alias refers to an unknown anchor or to itself",
    YAML_LIMIT: "too deep, or too many values once aliases are expanded (a YAML bomb)",
    SCHEMA_UNKNOWN_KEY: "a key the manifest format does not have (often a typo)",
    SCHEMA_MISSING_KEY: "a required key is missing",
    SCHEMA_TYPE: "a value of the wrong kind (a string where a list belongs, ...)",
    SCHEMA_VALUE: "a value outside what the field accepts (apiVersion, name, VR, ...)",
    SCHEMA_SELECTOR: "the selector does not name exactly one way to find image sets",
    KEYWORD_UNKNOWN: "not a DICOM keyword (with a did-you-mean); a warning under force",
    KEYWORD_RETIRED: "warning: the keyword is retired from the DICOM standard",
    WRONG_LEVEL: "the attribute is stored at another level of the metadata document",
    VALUE_VR: "the value does not fit the attribute's VR; a warning under force",
    NEEDS_FORCE: "the service accepts this change only with force: true",
    FORCE_UNUSED: "warning: force: true, but nothing in the manifest needs it",
    NEVER_UPDATABLE: "the service never updates this element (PixelData, ImageSetID, ...)",
    PRIVATE_TAG: "a private tag written wrongly or outside the Instance level",
    BAD_IDENTIFIER: "a datastore or image set ID, or a UID, has the wrong form",
    REMOVE_AND_SET: "the same attribute (or its series/instance) is both set and removed",
    REMOVE_TWICE: "warning: the same attribute is listed twice for removal",
    WILDCARD_ENTIRE: 'entire: true under a "*" key (it would remove every series/instance)',
    TABLE: "a table manifest's CSV is missing, unreadable or malformed, or a {Column} is unknown",
    NO_DATASTORE: "no spec.datastoreId and no datastoreId in reconciler.yaml",
    NOTHING_MANAGED: "warning: the manifest neither sets nor removes anything",
    REASON: "metadata.annotations reason or ticket is too long",
    REASON_PHI: "metadata.annotations reason or ticket seems to hold PHI (a name, a date, an ID)",
    CONFLICT: "two manifests want different values for the same attribute of the same target",
    SHARED_OWNERSHIP: "warning: two manifests set the same attribute to the same value",
    DUPLICATE_NAME: "two manifests have the same metadata.name",
    PROJECT: "reconciler.yaml has a bad datastoreId or region",
    POLICY: "a policy rule in reconciler.yaml or policies/ is unknown or badly written",
}
