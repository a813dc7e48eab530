"""The JSON Schema of a plan (``plan -o json`` and ``plan --out``), checked before a
saved plan is trusted.

The schema ships in the package as ``plan.schema.json`` (draft 2020-12): it documents
the format for programs that read plans (OPA/conftest policies, dashboards) and it is
what a saved plan is validated against. A saved plan is input like any other: it
travels between CI jobs and people, and can be edited. :func:`check` validates it
before a single field is used, so a wrong type, a missing field, an unknown field, a
zero or huge rate, an oversized list or a value of the wrong shape is one sentence
naming where in the file it is, never a traceback. What the schema cannot say (that
the payloads are what the listed changes make, that the image sets are the ones
planned) is checked afterwards: :mod:`reconciler.engine.planfile` rebuilds the
payloads, and :mod:`reconciler.engine.plancheck` compares each image set with its
pinned version.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

SCHEMA_FILE = "plan.schema.json"


@cache
def schema() -> dict[str, Any]:
    """The plan's JSON Schema, as shipped in the package."""
    text = resources.files(__package__).joinpath(SCHEMA_FILE).read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(schema())


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
    """None when ``data`` is a valid plan, else one sentence: where and what."""
    error = best_match(_validator().iter_errors(data))
    if error is None:
        return None
    return f"{_where(error)}: {_shown(error)}"
