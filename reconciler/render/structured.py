"""Machine renderings shared by show, explain and export: JSON and YAML, stable."""

from __future__ import annotations

import json
from typing import Any

import yaml


def dump(data: Any, output: str) -> str:
    """``data`` as ``json`` (indented, keys in the order given) or ``yaml`` (block style)."""
    if output == "json":
        return json.dumps(data, indent=2, ensure_ascii=False)
    text: str = yaml.safe_dump(
        data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100
    )
    return text.rstrip("\n")
