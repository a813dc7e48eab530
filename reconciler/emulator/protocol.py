"""The service's REST-JSON wire protocol, driven by botocore's own service model.

Routes come from each operation's ``http.requestUri`` (so the emulator cannot drift from
the real paths); requests are parsed member by member from URI, query string, headers
and body as the input shape says, and validated the way the service validates what
botocore does not (patterns, lengths, ranges, required members); responses are
serialized from the output shape.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import parse_qs, unquote

import botocore.session
from botocore.model import OperationModel, Shape, StructureShape

from reconciler.emulator import choices
from reconciler.emulator.exceptions import UnknownOperationException, ValidationException

SERVICE = "medical-imaging"


@dataclass(frozen=True)
class Route:
    operation: OperationModel
    method: str
    pattern: re.Pattern[str]


@cache
def service_model() -> Any:
    return botocore.session.get_session().get_service_model(SERVICE)


@cache
def routes() -> tuple[Route, ...]:
    model = service_model()
    result = []
    for name in model.operation_names:
        op = model.operation_model(name)
        path = op.http["requestUri"].split("?")[0]
        regex = re.sub(
            r"\{([^}+]+)(\+?)\}",
            lambda m: f"(?P<{m.group(1)}>{'.+' if m.group(2) else '[^/]+'})",
            re.escape(path).replace(r"\{", "{").replace(r"\}", "}"),
        )
        result.append(Route(op, op.http["method"], re.compile(f"^{regex}$")))
    # Literal paths first, so /datastore never loses to /datastore/{datastoreId}.
    return tuple(sorted(result, key=lambda r: -len(r.pattern.pattern)))


def match(method: str, raw_path: str) -> tuple[OperationModel, dict[str, str]]:
    for route in routes():
        if route.method != method:
            continue
        found = route.pattern.match(raw_path)
        if found:
            return route.operation, {k: unquote(v) for k, v in found.groupdict().items()}
    raise UnknownOperationException(f"No operation for {method} {raw_path}")


# -- parsing -----------------------------------------------------------------------
def _from_text(shape: Shape, text: str) -> Any:
    if shape.type_name == "integer" or shape.type_name == "long":
        try:
            return int(text)
        except ValueError:
            raise ValidationException(f"{shape.name} must be an integer") from None
    if shape.type_name == "boolean":
        if text not in ("true", "false"):
            raise ValidationException(f"{shape.name} must be true or false")
        return text == "true"
    return text


def _from_json(shape: Shape, value: Any, where: str) -> Any:
    """JSON body values → Python: blobs decoded from base64, the rest as is."""
    if value is None:
        return None
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            raise ValidationException(f"{where} must be an object")
        members = shape.members
        unknown = [k for k in value if k not in members]
        if unknown:
            raise ValidationException(f"{where}: unknown member {unknown[0]}")
        return {k: _from_json(members[k], v, f"{where}.{k}") for k, v in value.items()}
    if kind == "list":
        if not isinstance(value, list):
            raise ValidationException(f"{where} must be a list")
        return [_from_json(shape.member, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if kind == "map":
        if not isinstance(value, dict):
            raise ValidationException(f"{where} must be a map")
        return {k: _from_json(shape.value, v, f"{where}.{k}") for k, v in value.items()}
    if kind == "blob":
        try:
            return base64.b64decode(value, validate=True)
        except (ValueError, TypeError):
            raise ValidationException(f"{where} is not valid base64") from None
    if kind == "timestamp":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ValidationException(f"{where} must be an epoch timestamp")
    return value


def parse_request(
    op: OperationModel, uri_params: dict[str, str], query: str, headers: dict[str, str], body: bytes
) -> dict[str, Any]:
    shape = op.input_shape
    if shape is None:
        return {}
    params: dict[str, Any] = {}
    query_values = parse_qs(query, keep_blank_values=True)
    payload = shape.serialization.get("payload")
    body_members: dict[str, Shape] = {}
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if location == "uri":
            params[name] = _from_text(member, uri_params[wire])
        elif location == "querystring":
            if wire in query_values:
                values = query_values[wire]
                params[name] = (
                    [_from_text(member.member, v) for v in values]
                    if member.type_name == "list"
                    else _from_text(member, values[-1])
                )
        elif location == "header":
            if wire.lower() in headers:
                params[name] = _from_text(member, headers[wire.lower()])
        elif name != payload:
            body_members[name] = member
    if payload:
        member = shape.members[payload]
        if member.type_name == "blob":
            params[payload] = body
        elif body:
            params[payload] = _from_json(member, _json_body(body), payload)
    elif body_members and body:
        document = _json_body(body)
        if not isinstance(document, dict):
            raise ValidationException("the request body must be a JSON object")
        for name, value in document.items():
            if name not in body_members:
                raise ValidationException(f"unknown member {name}")
            params[name] = _from_json(body_members[name], value, name)
    validate(shape, params)
    return params


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValidationException("the request body is not valid JSON") from None
    except (ValueError, RecursionError):  # a number past int's digit limit, deep nesting
        raise ValidationException("the request body is JSON beyond the service's limits") from None


# -- validation of what botocore leaves to the server --------------------------------
# Worded as the service words it (AWS's request validation, which AWS's own
# get-datastore.integration.test.js asserts verbatim): every violation is collected,
# then "<N> validation error(s) detected: " and the violations joined by "; ", each
# "Value <value> at '<path>' failed to satisfy constraint: <constraint>". A path is the
# member's name, nested members joined by ".", list items as "<list>.<n>.member"
# (1-based, as AWS writes them), map values as "<map>.<key>".
@cache
def _compiled(pattern: str) -> re.Pattern[str] | None:
    translated = pattern.replace(r"\p{ASCII}", r"[\x00-\x7f]")
    if r"\p{" in translated:
        return None  # a Java character class Python's re lacks: left to the backend
    try:
        return re.compile(translated)
    except re.error:
        return None


def _shown(value: Any) -> str:
    """A value as the service's messages show it (Java's toString): null unquoted."""

    def text(item: Any) -> str:
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, dict):
            return "{" + ", ".join(f"{k}={text(v)}" for k, v in item.items()) + "}"
        if isinstance(item, list):
            return "[" + ", ".join(text(v) for v in item) + "]"
        if isinstance(item, (bytes, bytearray)):
            return f"java.nio.HeapByteBuffer[pos=0 lim={len(item)} cap={len(item)}]"
        return str(item)

    return "null" if value is None else f"'{text(value)}'"


def _violations(shape: Shape, value: Any, where: str) -> list[str]:
    """Every constraint of ``shape`` that ``value`` breaks, in the service's wording."""
    meta = shape.metadata
    kind = shape.type_name

    def broken(constraint: str) -> list[str]:
        return [f"Value {_shown(value)} at '{where}' failed to satisfy constraint: {constraint}"]

    if kind == "structure":
        assert isinstance(shape, StructureShape)
        found: list[str] = []
        required = meta.get("required", [])
        for name, member in shape.members.items():
            path = f"{where}.{name}" if where else name
            if value.get(name) is None:
                if name in required:
                    found.append(
                        f"Value null at '{path}' failed to satisfy constraint: "
                        "Member must not be null"
                    )
                continue
            found += _violations(member, value[name], path)
        return found
    if kind == "list":
        found = _length(meta, len(value), broken)
        for index, item in enumerate(value):
            found += _violations(shape.member, item, f"{where}.{index + 1}.member")
        return found
    if kind == "map":
        found = _length(meta, len(value), broken)
        for key in value:
            for failure in _violations(shape.key, key, where):
                constraint = failure.split("failed to satisfy constraint: ", 1)[1]
                found += broken(f"Map keys must satisfy constraint: [{constraint}]")
        for key, item in value.items():
            found += _violations(shape.value, item, f"{where}.{key}")
        return found
    if kind == "string":
        found = _length(meta, len(value), broken)
        pattern = None if shape.name in choices.LOCAL_URI_SHAPES else meta.get("pattern")
        compiled = _compiled(pattern) if pattern else None
        if compiled is not None and not compiled.fullmatch(value):
            found += broken(f"Member must satisfy regular expression pattern: {pattern}")
        if "enum" in meta and value not in meta["enum"]:
            found += broken(f"Member must satisfy enum value set: [{', '.join(meta['enum'])}]")
        return found
    if kind == "blob":
        return _length(meta, len(value), broken)
    if kind in ("integer", "long"):
        if "min" in meta and value < meta["min"]:
            return broken(f"Member must have value greater than or equal to {meta['min']}")
        if "max" in meta and value > meta["max"]:
            return broken(f"Member must have value less than or equal to {meta['max']}")
    return []


def _length(meta: dict[str, Any], length: int, broken: Callable[[str], list[str]]) -> list[str]:
    if "min" in meta and length < meta["min"]:
        return broken(f"Member must have length greater than or equal to {meta['min']}")
    if "max" in meta and length > meta["max"]:
        return broken(f"Member must have length less than or equal to {meta['max']}")
    return []


def validate(shape: Shape, value: Any, where: str = "") -> None:
    """Raise one ValidationException naming every constraint ``value`` breaks."""
    if value is None:
        return
    found = _violations(shape, value, where)
    if found:
        noun = "error" if len(found) == 1 else "errors"
        raise ValidationException(f"{len(found)} validation {noun} detected: " + "; ".join(found))


# -- serialization -----------------------------------------------------------------
def _to_json(shape: Shape, value: Any) -> Any:
    kind = shape.type_name
    if kind == "structure":
        return {
            member.serialization.get("name", name): _to_json(member, value[name])
            for name, member in shape.members.items()
            if value.get(name) is not None
        }
    if kind == "list":
        return [_to_json(shape.member, v) for v in value]
    if kind == "map":
        return {k: _to_json(shape.value, v) for k, v in value.items()}
    if kind == "blob":
        return base64.b64encode(value).decode("ascii")
    if kind == "timestamp":
        return float(value)
    return value


def serialize_response(
    op: OperationModel, result: dict[str, Any]
) -> tuple[int, dict[str, str], bytes]:
    shape = op.output_shape
    status = int(op.http.get("responseCode", 200))
    headers: dict[str, str] = {}
    if shape is None:
        return status, {"Content-Type": "application/json"}, b"{}"
    payload = shape.serialization.get("payload")
    body_values: dict[str, Any] = {}
    for name, member in shape.members.items():
        value = result.get(name)
        if value is None:
            continue
        location = member.serialization.get("location")
        if location == "header":
            headers[member.serialization.get("name", name)] = str(value)
        elif name != payload:
            body_values[name] = value
    if payload:
        member = shape.members[payload]
        value = result.get(payload)
        if member.type_name == "blob":
            return status, headers, bytes(value or b"")
        body = json.dumps(_to_json(member, value or {})).encode()
    else:
        body = json.dumps(_to_json(shape, body_values)).encode()
    headers.setdefault("Content-Type", "application/json")
    return status, headers, body
