"""Why a manifest changes what it does: ``metadata.annotations.reason`` and ``ticket``.

A reason and a ticket travel further than any value: into the plan, the pull request's
comment, the run records and the audit trail, which a compliance officer takes away.
They are free text, so they are checked like a value for PHI: a reason that quotes a
value this manifest writes to a PHI attribute ("renamed to DOE^JANE"), or that holds
something shaped like a person's name in DICOM form, a date, a long number (an MRN,
an accession number), an e-mail address, a phone number or a US social security
number, is an error at its line. The message never repeats what it found.

:func:`phi_in_text` is the one check; saved plans run it again on load, so an edited
plan file cannot carry PHI into the run records either.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from reconciler.dicom.phi import is_phi, value_strings
from reconciler.manifest import codes
from reconciler.manifest.model import REASON, TICKET, DesiredValue, Location, Problem, error
from reconciler.manifest.yamlsafe import Document

MAX_REASON_CHARS = 500
MAX_TICKET_CHARS = 200

# What a reason must not hold, each with the words a message uses for it.
# A number inside a UID (1.3.6.1.4.1.5962.20040119072730) is not a patient's: the
# number patterns do not look inside dotted digits.
_START = r"(?<![\w.-])"
_END = r"(?![\w-]|\.\d)"
_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[^\s^]+\^[^\s^]*"), "a name in DICOM form (FAMILY^GIVEN)"),
    (
        re.compile(_START + r"(?:19|20)\d\d-?(?:0[1-9]|1[0-2])-?(?:0[1-9]|[12]\d|3[01])" + _END),
        "a date",
    ),
    (
        re.compile(
            _START + r"(?:0?[1-9]|[12]\d|3[01])[./](?:0?[1-9]|1[0-2])[./](?:19|20)\d\d" + _END
        ),
        "a date",
    ),
    (re.compile(_START + r"\d{3}-\d{2}-\d{4}" + _END), "a social security number"),
    (re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"), "an e-mail address"),
    (re.compile(_START + r"\+?\d[\d ()-]{8,}\d" + _END), "a phone number"),
    (re.compile(_START + r"\d{6,}" + _END), "a long number (an MRN or accession number?)"),
)


def phi_in_text(text: str, values: Iterable[str] = ()) -> str | None:
    """What PHI ``text`` appears to hold (words for a message, never the value itself),
    or None. ``values``: spellings of PHI values it must not quote."""
    for value in values:
        if len(value.strip()) >= 3 and re.search(rf"(?<![\w]){re.escape(value)}(?![\w])", text):
            return "a value this manifest writes to a PHI attribute"
    for pattern, what in _SHAPES:
        if pattern.search(text):
            return what
    return None


def phi_values(sets: Iterable[DesiredValue]) -> tuple[str, ...]:
    """The spellings of every value ``sets`` writes to a PHI attribute."""
    found: list[str] = []
    for item in sets:
        if is_phi(item.key):
            found.extend(value_strings(item.value))
    return tuple(found)


def check_why(document: Document, sets: Iterable[DesiredValue]) -> list[Problem]:
    """The problems of a document's reason and ticket: too long, or carrying PHI."""
    metadata = document.value.get("metadata") if isinstance(document.value, dict) else None
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if not isinstance(annotations, dict):
        return []
    values = phi_values(sets)
    problems = []
    for key, limit in ((REASON, MAX_REASON_CHARS), (TICKET, MAX_TICKET_CHARS)):
        text = annotations.get(key)
        if not isinstance(text, str):
            continue  # absent, or the schema check said why
        where = document.location(("metadata", "annotations", key))
        problem = _check_one(key, text, limit, values, where)
        if problem is not None:
            problems.append(problem)
    return problems


def _check_one(
    key: str, text: str, limit: int, values: tuple[str, ...], where: Location
) -> Problem | None:
    if len(text) > limit:
        return error(
            where,
            f"the {key} is {len(text)} characters long; at most {limit} "
            "(link the ticket for the details)",
            codes.REASON,
        )
    found = phi_in_text(text, values)
    if found is None:
        return None
    return error(
        where,
        f"the {key} seems to hold PHI ({found}); it goes into the plan, the pull "
        "request and the audit trail, so say why without the patient's data (name "
        "the ticket instead)",
        codes.REASON_PHI,
    )
