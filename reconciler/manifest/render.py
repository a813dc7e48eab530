"""How validation results read: compiler-style lines, a summary, JSON, GitHub annotations."""

from __future__ import annotations

import json
from typing import Any

from reconciler.manifest.model import LoadResult, Problem, Severity

JSON_FORMAT_VERSION = 1


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def failed(result: LoadResult, *, strict: bool = False) -> bool:
    return bool(result.errors or (strict and result.warnings))


def lines(result: LoadResult, *, show_phi: bool = False) -> list[str]:
    """One ``file:line:col: severity: message [code]`` line per problem, in file order;
    PHI values a message quotes are masked unless ``show_phi``."""
    return [str(problem.shown(show_phi)) for problem in result.problems]


def summary(result: LoadResult, *, strict: bool = False) -> str:
    """``3 errors in 2 files (12 manifests checked)`` or ``12 manifests OK``."""
    checked = _plural(result.documents_checked, "manifest")
    errors, warnings = len(result.errors), len(result.warnings)
    if failed(result, strict=strict):
        counted = [_plural(errors, "error")] if errors else []
        counted += [_plural(warnings, "warning")] if warnings else []
        files = len({p.location.path for p in result.problems})
        note = "; --strict" if strict and warnings and not errors else ""
        return f"{', '.join(counted)} in {_plural(files, 'file')} ({checked} checked{note})"
    text = f"{checked} OK" if result.documents_checked else "no manifests found"
    return f"{text}, {_plural(warnings, 'warning')}" if warnings else text


def _problem_json(problem: Problem) -> dict[str, Any]:
    location = problem.location
    return {
        "path": location.path,
        "line": location.line or None,
        "column": location.column or None,
        "severity": problem.severity.value,
        "code": problem.code,
        "message": problem.message,
    }


def to_json(result: LoadResult, *, strict: bool = False, show_phi: bool = False) -> str:
    document = {
        "format_version": JSON_FORMAT_VERSION,
        "ok": not failed(result, strict=strict),
        "files_checked": result.files_checked,
        "manifests_checked": result.documents_checked,
        "errors": len(result.errors),
        "warnings": len(result.warnings),
        "problems": [_problem_json(problem.shown(show_phi)) for problem in result.problems],
    }
    return json.dumps(document, indent=2, ensure_ascii=False)


def _escape_data(text: str) -> str:
    # GitHub workflow commands: https://github.com/actions/toolkit (command.ts escapeData)
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotations(result: LoadResult, *, show_phi: bool = False) -> list[str]:
    """``::error file=...,line=...,col=...::message`` lines for GitHub Actions."""
    annotations = []
    for problem in (p.shown(show_phi) for p in result.problems):
        command = "error" if problem.severity is Severity.ERROR else "warning"
        location = problem.location
        properties = [f"file={_escape_property(location.path)}"]
        if location.line:
            properties += [f"line={location.line}", f"col={location.column}"]
        properties.append(f"title={_escape_property(f'reconciler [{problem.code}]')}")
        annotations.append(f"::{command} {','.join(properties)}::{_escape_data(problem.message)}")
    return annotations
