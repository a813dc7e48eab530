"""Structural validation against the shipped JSON Schema, with messages that teach.

jsonschema's own messages ("Additional properties are not allowed ('spce' was
unexpected)") say what is wrong in the schema's terms; here each error becomes a
sentence about the manifest: where it is (file:line:col through the document's
position map), what would be valid, and a did-you-mean where one is likely.
The schema's ``errorMessage``/``patternErrorMessage`` annotations are the ones VS Code's
YAML extension shows, so the editor and ``reconciler validate`` say the same thing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import fastjsonschema

from reconciler.dicom.phi import is_phi
from reconciler.manifest import codes
from reconciler.manifest.model import Problem, error
from reconciler.manifest.values import close_keywords
from reconciler.manifest.yamlsafe import Document, YamlPath
from reconciler.suggest import closest

if TYPE_CHECKING:  # jsonschema is imported only to explain a document that is not valid
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

SCHEMA_FILE = "schema.json"
SELECTOR_KEYS = (
    "imageSetId",
    "studyInstanceUID",
    "seriesInstanceUID",
    "patientId",
    "accessionNumber",
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@cache
def schema() -> dict[str, Any]:
    """The manifest JSON Schema shipped in the package (draft 2020-12)."""
    text = resources.files(__package__).joinpath(SCHEMA_FILE).read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


_ANNOTATIONS = frozenset({"description", "title", "$comment"})


def inline(node: Any, defs: dict[str, Any]) -> Any:
    """``node`` with every ``$ref`` replaced by its target and annotations dropped.

    The schema has no recursive references, so inlining terminates; what it buys is
    speed: jsonschema resolves each ``$ref`` through the referencing library on every
    use, which was two thirds of the validation time.
    """
    if isinstance(node, list):
        return [inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        merged = {**defs[node["$ref"].rsplit("/", 1)[1]], **node}
        del merged["$ref"]
        return inline(merged, defs)
    inlined = {
        key: value if key in ("enum", "const", "required") else inline(value, defs)
        for key, value in node.items()
        if key not in _ANNOTATIONS and key != "$defs"
    }
    # An empty schema accepts anything; jsonschema skips a literal True without work.
    inlined = {key: True if value == {} else value for key, value in inlined.items()}
    # Keyword properties listed for editors' completion change nothing when a pattern
    # accepting anything matches them too: drop them rather than test each on every map.
    anything = [re.compile(p) for p, s in inlined.get("patternProperties", {}).items() if s is True]
    if anything and isinstance(inlined.get("properties"), dict):
        inlined["properties"] = {
            key: value
            for key, value in inlined["properties"].items()
            if not (value is True and any(p.search(key) for p in anything))
        }
    return inlined


@cache
def _inlined() -> dict[str, Any]:
    document = schema()
    inlined: dict[str, Any] = inline(document, document.get("$defs", {}))
    return inlined


@cache
def _validator() -> Draft202012Validator:
    # Built once, from the inlined schema (see inline).
    from jsonschema import Draft202012Validator

    return Draft202012Validator(_inlined())


@cache
def _is_valid() -> Callable[[Any], Any]:
    """The same schema compiled to Python by fastjsonschema: it answers "valid" about
    ten times sooner than jsonschema walks the document, and most documents are valid.
    It only says yes or no; a document it refuses goes to jsonschema, whose errors
    :func:`_explain` turns into the messages. The schema uses no keyword newer than
    draft 7, the newest fastjsonschema knows (tests/manifest/test_manifest_schema.py
    checks that both agree)."""
    draft7 = {k: v for k, v in _inlined().items() if k not in ("$schema", "$id")}
    compiled: Callable[[Any], Any] = fastjsonschema.compile(draft7, use_default=False)
    return compiled


def display_path(path: YamlPath) -> str:
    """``spec.set.Series["1.2.3"].Instances`` style, for messages."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.match(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text or "the manifest"


def describe(value: Any) -> str:
    """What kind of value ``value`` is, for "expected X, got Y"."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({json.dumps(value)})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"a string ({shown!r})"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


@cache
def _homes() -> dict[str, str]:
    """Each structural key of the format and the place it belongs (for misplaced keys)."""
    homes: dict[str, str] = {}
    defs = schema()["$defs"]

    def walk(node: dict[str, Any], where: str, depth: int) -> None:
        if "$ref" in node:
            node = defs[node["$ref"].rsplit("/", 1)[1]]
        if depth > 3 or "patternProperties" in node:
            return  # attribute mappings: their keys are DICOM keywords, not format keys
        for name, child in node.get("properties", {}).items():
            homes.setdefault(name, where)
            walk(child, f"{where}.{name}" if where else name, depth + 1)

    walk(defs["manifest"], "", 0)  # an ImageSetMetadata manifest's places
    return homes


def _allowed_keys(node_schema: dict[str, Any]) -> list[str]:
    return list(node_schema.get("properties", {}))


def _unknown_key(key: str, path: YamlPath, node_schema: dict[str, Any]) -> str:
    where = "at the top of the manifest" if not path else f"under {display_path(path)}"
    if key == "<<":
        return f"YAML merge keys (<<) are not supported {where}: write the keys out"
    if "patternProperties" in node_schema:
        message = f"{key!r} {where} is neither a DICOM keyword nor an 8-digit tag number"
        close = close_keywords(re.sub(r"[^A-Za-z0-9]", "", key))
        return message + (f"; did you mean {close[0]!r}?" if close else "")
    message = f"unknown key {key!r} {where}"
    if key == "Instances" and path and path[-1] in ("set", "remove"):
        return (
            f"{message}: instances live under their series, as in the metadata document: "
            f"write {path[-1]}.Series.<SeriesInstanceUID>.Instances.<SOPInstanceUID>"
        )
    allowed = _allowed_keys(node_schema)
    similar = closest(key, allowed)
    if similar:
        return f"{message}; did you mean {similar[0]!r}?"
    home = _homes().get(key)
    if home is not None and home != display_path(path):
        return f"{message}: {key!r} belongs under {home or 'the top of the manifest'}"
    return f"{message}; expected one of: {', '.join(allowed)}" if allowed else message


def _type_message(failure: ValidationError) -> str:
    node_schema = failure.schema if isinstance(failure.schema, dict) else {}
    expected = node_schema.get("errorMessage") or f"expected {failure.validator_value}"
    message = f"{expected}, got {describe(failure.instance)}"
    wanted = failure.validator_value
    if wanted == "string" and isinstance(failure.instance, (int, float, bool)):
        message += "; put it in quotes so YAML reads it as text"
    elif wanted == "array" and isinstance(failure.instance, str):
        message += f"; write [{failure.instance}]"
    return message


def _uid_kind(path: YamlPath) -> str:
    return "SOPInstanceUID" if path and path[-1] == "Instances" else "SeriesInstanceUID"


def _explain(failure: ValidationError, document: Document) -> Iterator[Problem]:
    path: YamlPath = tuple(failure.absolute_path)
    kind = failure.validator
    rule: Any = failure.validator_value  # typed Any | Unset in the stubs; set on every error
    node_schema: dict[str, Any] = failure.schema if isinstance(failure.schema, dict) else {}
    instance: Any = failure.instance
    field = display_path(path)
    name = path[-1] if path and isinstance(path[-1], str) else field
    if kind == "additionalProperties" and isinstance(instance, dict):
        patterns = [re.compile(p) for p in node_schema.get("patternProperties", {})]
        known = node_schema.get("properties", {})
        for key in instance:
            if key in known or any(p.search(key) for p in patterns):
                continue
            yield error(
                document.location((*path, key), key=True),
                _unknown_key(key, path, node_schema),
                codes.SCHEMA_UNKNOWN_KEY,
            )
    elif kind == "required" and isinstance(instance, dict):
        # jsonschema yields one error per missing key, its message starting with the key.
        missing = next(
            (key for key in rule if key not in instance and failure.message.startswith(repr(key))),
            "?",
        )
        where = "the manifest" if not path else field
        hint = {
            "apiVersion": ": add apiVersion: reconciler/v1",
            "kind": ": add kind: ImageSetMetadata",
            "selector": ": add selector: with one of " + ", ".join(SELECTOR_KEYS),
            "vr": ': private tags need their VR, e.g. {value: "97", vr: DS}',
        }.get(missing, "")
        location = document.location(path, key=True)
        yield error(location, f"{where} is missing {missing!r}{hint}", codes.SCHEMA_MISSING_KEY)
    elif kind == "type":
        yield error(document.location(path), _type_message(failure), codes.SCHEMA_TYPE)
    elif kind == "const":
        yield error(
            document.location(path),
            f"{name} must be {rule!r}, got {describe(instance)}",
            codes.SCHEMA_VALUE,
        )
    elif kind == "enum":
        options = [o if isinstance(o, str) else json.dumps(o) for o in rule]
        close = closest(str(instance), options, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        yield error(
            document.location(path),
            f"{name} must be one of {', '.join(options)}; got {describe(instance)}{hint}",
            codes.SCHEMA_VALUE,
        )
    elif kind in ("pattern", "maxLength", "minLength") and "propertyNames" in failure.schema_path:
        yield error(
            document.location((*path, str(instance)), key=True),
            f"{instance!r} is not a valid {_uid_kind(path)} key: "
            + node_schema.get("patternErrorMessage", "expected a UID"),
            codes.BAD_IDENTIFIER,
        )
    elif kind == "pattern":
        explanation = node_schema.get("patternErrorMessage") or f"expected {rule}"
        code = codes.SCHEMA_VALUE if path and path[-1] == "name" else codes.BAD_IDENTIFIER
        length = f" ({len(instance)} characters)" if isinstance(instance, str) else ""
        yield error(
            document.location(path), f"{field}: {explanation}; got {instance!r}{length}", code
        )
    elif kind in ("maxLength", "minLength"):
        size = len(instance) if isinstance(instance, str) else 0
        message = (
            f"{field} must not be empty"
            if kind == "minLength"
            else f"{field} is {size} characters long; at most {rule} allowed"
        )
        yield error(document.location(path), message, codes.SCHEMA_VALUE)
    elif kind == "oneOf" and path and path[-1] == "selector" and isinstance(instance, dict):
        given = [key for key in SELECTOR_KEYS if key in instance]
        message = (
            "the selector is empty"
            if not instance
            else "the selector names no way to find image sets"
            if not given
            else f"the selector names {len(given)} ways to find image sets ({', '.join(given)})"
        )
        yield error(
            document.location(path, key=True),
            f"{message}: give exactly one of {', '.join(SELECTOR_KEYS)}",
            codes.SCHEMA_SELECTOR,
        )
    else:  # a schema feature without a tailored sentence: jsonschema's own words
        yield error(document.location(path), f"{field}: {failure.message}", codes.SCHEMA_VALUE)


# Selector keys whose values are PHI (a patient's ID, an accession number).
_PHI_SELECTORS = frozenset({"patientId", "accessionNumber"})


def _sensitive(key: object, above: bool) -> bool:
    """Whether values under ``key`` may be a patient's: the Patient level, a PHI
    attribute or private tag, a PHI selector; a ``vr`` is never PHI."""
    if key == "vr":
        return False
    if isinstance(key, str) and (key == "Patient" or is_phi(key) or key in _PHI_SELECTORS):
        return True
    return above


def _phi_strings(value: Any, sensitive: bool) -> Iterator[str]:
    if isinstance(value, str):
        if sensitive:
            yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _phi_strings(item, _sensitive(key, sensitive))
    elif isinstance(value, list):
        for item in value:
            yield from _phi_strings(item, sensitive)


def _quoted_values(failure: ValidationError) -> tuple[str, ...]:
    """The values a message about ``failure`` may quote that are PHI: strings at the
    Patient level, of PHI attributes and private tags, and of ``patientId`` /
    ``accessionNumber`` selectors — also when a whole mapping holding them is quoted.
    CI output masks them (the problem's ``phi``)."""
    path = tuple(failure.absolute_path)
    if path[:1] != ("spec",):
        return ()
    sensitive = False
    for key in path[1:]:
        sensitive = _sensitive(key, sensitive)
    return tuple(dict.fromkeys(_phi_strings(failure.instance, sensitive)))


def check_structure(document: Document) -> list[Problem]:
    """Every structural problem of one document, located and explained; values it
    quotes from where PHI lives are recorded so CI output masks them."""
    try:
        _is_valid()(document.value)
        return []
    except fastjsonschema.JsonSchemaException:
        pass  # explained below, by jsonschema's errors
    problems: list[Problem] = []
    for failure in _validator().iter_errors(document.value):
        quoted = _quoted_values(failure)
        for problem in _explain(failure, document):
            problems.append(replace(problem, phi=quoted) if quoted else problem)
    return problems
