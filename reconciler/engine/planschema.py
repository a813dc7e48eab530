"""The JSON Schema of a saved plan (``plan --out``), checked before a plan is trusted.

A saved plan is input like any other: it travels between CI jobs and people, and can be
edited. :func:`check` validates it against :data:`SCHEMA` before a single field is
used, so a wrong type, a missing field, an unknown field, a zero or huge rate, an
oversized list or a value of the wrong shape is one sentence naming where in the file
it is, never a traceback. What the schema cannot say (that the payloads are what the
listed changes make, that the image sets are the ones planned) is checked afterwards:
:mod:`reconciler.engine.planfile` rebuilds the payloads, and
:mod:`reconciler.engine.plancheck` compares each image set with its pinned version.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

MAX_IMAGE_SETS = 1_000_000
MAX_CHANGES = 100_000
MAX_TEXT = 1024  # IDs, keys, names, messages: far more than any real one
_ID = {"type": "string", "pattern": "^[0-9A-Za-z]{1,64}$"}
_VERSION = {"type": "string", "pattern": "^([1-9][0-9]{0,17})?$"}  # "" for an unread one
_TEXT = {"type": "string", "maxLength": MAX_TEXT}
_MAYBE_TEXT = {"type": ["string", "null"], "maxLength": MAX_TEXT}
_COUNT = {"type": "integer", "minimum": 0, "maximum": 10**12}
_LOCATION = {
    "type": ["object", "null"],
    "additionalProperties": False,
    "required": ["path", "line", "column"],
    "properties": {
        "path": {"type": "string", "maxLength": 4096},
        "line": {"type": ["integer", "null"], "minimum": 0, "maximum": 10**9},
        "column": {"type": ["integer", "null"], "minimum": 0, "maximum": 10**9},
    },
}
_CHANGE = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "op",
        "level",
        "series",
        "instance",
        "key",
        "before",
        "after",
        "vr",
        "force_reason",
        "phi",
        "manifest",
        "location",
    ],
    "properties": {
        "op": {"enum": ["add", "replace", "remove"]},
        "level": {"enum": ["Patient", "Study", "Series", "Instance"]},
        "series": _MAYBE_TEXT,
        "instance": _MAYBE_TEXT,
        "key": _MAYBE_TEXT,
        "before": {},  # any JSON value: a DICOM attribute's value
        "after": {},
        "vr": {"type": ["string", "null"], "pattern": "^[A-Z]{2}$"},
        "force_reason": _MAYBE_TEXT,
        "phi": {"type": "boolean"},
        "manifest": _TEXT,
        "location": _LOCATION,
        "origin": _TEXT,  # drift only: the version that made the live value
    },
}
_PAYLOAD = {
    "type": "object",
    "additionalProperties": False,
    "required": ["force", "size", "digest", "changes"],  # blobs: only in a saved plan
    "properties": {
        "force": {"type": "boolean"},
        "size": _COUNT,
        "digest": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "changes": {"type": "array", "maxItems": MAX_CHANGES,
                    "items": {"type": "integer", "minimum": 0, "maximum": MAX_CHANGES}},
        "updatable": {"type": ["string", "null"], "maxLength": 1_048_576},
        "removable": {"type": ["string", "null"], "maxLength": 1_048_576},
    },
}  # fmt: skip
_PROBLEM = {
    "type": "object",
    "additionalProperties": False,
    "required": ["message", "manifest", "location"],
    "properties": {"message": {"type": "string", "maxLength": 65536}, "manifest": _TEXT,
                   "location": _LOCATION},
}  # fmt: skip
_IMAGE_SET = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "datastore_id",
        "image_set_id",
        "version_id",
        "is_primary",
        "action",
        "manifests",
        "unchanged",
        "changes",
        "problems",
        "payloads",
        "study_uid",
        "include_study",
        "study_leader",
        "replace",
    ],
    "properties": {
        "datastore_id": _ID,
        "image_set_id": _ID,
        "version_id": _VERSION,
        "is_primary": {"type": "boolean"},
        "action": {"enum": ["update", "replace", "none", "blocked"]},
        "manifests": {"type": "array", "maxItems": 10_000, "items": _TEXT},
        "unchanged": _COUNT,
        "changes": {"type": "array", "maxItems": MAX_CHANGES, "items": _CHANGE},
        "problems": {"type": "array", "maxItems": MAX_CHANGES, "items": _PROBLEM},
        "payloads": {"type": "array", "maxItems": 10_000, "items": _PAYLOAD},
        "study_uid": {"type": ["string", "null"], "maxLength": 64},
        "include_study": {"type": "boolean"},
        "study_leader": {"anyOf": [{"type": "null"}, _ID]},
        "replace": {"type": "boolean"},
    },
}
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "reconciler saved plan, format_version 1",
    "type": "object",
    "additionalProperties": False,
    "required": [
        "format_version",
        "created_at",
        "endpoint",
        "manifest_digest",
        "summary",
        "unresolved",
        "image_sets",
    ],
    "properties": {
        "format_version": {"const": 1},
        "created_at": _TEXT,
        "endpoint": _TEXT,
        "update_rate_source": _TEXT,
        "manifest_digest": {"type": ["string", "null"], "maxLength": 256},
        "combine_forced": {"type": "boolean"},
        "summary": {
            "type": "object",
            "required": ["update_rate_per_second"],
            "properties": {
                # A rate divides: 0 or a negative one is refused here, not mid-apply.
                "update_rate_per_second": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "maximum": 100_000,
                },
            },
            "additionalProperties": {
                "type": ["integer", "number"],
                "minimum": 0,
                "maximum": 10**15,
            },
        },
        "unresolved": {
            "type": "array",
            "maxItems": 100_000,
            "items": {"type": "string", "maxLength": 65536},
        },
        "left_out": {"type": "array", "maxItems": 100_000, "items": _TEXT},
        "manifests": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "changed": {"type": "array", "maxItems": 100_000, "items": _TEXT},
                "blocked": {"type": "array", "maxItems": 100_000, "items": _TEXT},
            },
        },
        "resolution": {
            "type": "array",
            "maxItems": 100_000,
            "items": {
                "type": "object",
                "required": [
                    "datastore_id",
                    "strategy",
                    "selectors",
                    "requests",
                    "listed",
                    "gave_up_listing",
                ],
                "additionalProperties": False,
                "properties": {
                    "datastore_id": _TEXT,
                    "strategy": {"enum": ["ids", "search", "list"]},
                    "selectors": {"type": "integer", "minimum": 0},
                    "requests": {"type": "integer", "minimum": 0},
                    "listed": {"type": ["integer", "null"], "minimum": 0},
                    "gave_up_listing": {"type": "boolean"},
                },
            },
        },
        "image_sets": {"type": "array", "maxItems": MAX_IMAGE_SETS, "items": _IMAGE_SET},
    },
}
_VALIDATOR = Draft202012Validator(SCHEMA)


def _where(error: ValidationError) -> str:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return path.lstrip(".") or "(the document)"


def _shown(error: ValidationError) -> str:
    """The validator's sentence, with the offending value cut short (it can be PHI or
    megabytes): the location says where to look."""
    message = error.message
    if len(message) > 200:
        message = message[:200] + "…"
    return message


def check(data: Any) -> str | None:
    """None when ``data`` is a valid saved plan, else one sentence: where and what."""
    error = best_match(_VALIDATOR.iter_errors(data))
    if error is None:
        return None
    return f"{_where(error)}: {_shown(error)}"
