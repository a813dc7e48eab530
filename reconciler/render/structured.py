"""Machine renderings shared by show, explain and export: JSON and YAML, stable."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

# Strings a YAML 1.2 reader (the manifest loader) would read as numbers although
# PyYAML, a YAML 1.1 writer, leaves them plain: "03086212" is an int in 1.2.
_NUMERIC_LOOKING = re.compile(r"[-+0-9.eE_:xob]+|\.(inf|Inf|INF|nan|NaN|NAN)")


class _Dumper(yaml.SafeDumper):
    """Quotes every string that could read back as something else."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "'" if _NUMERIC_LOOKING.fullmatch(value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def dump(data: Any, output: str) -> str:
    """``data`` as ``json`` (indented, keys in the order given) or ``yaml`` (block style)."""
    if output == "json":
        return json.dumps(data, indent=2, ensure_ascii=False)
    text: str = yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False,
        width=100,
    )  # fmt: skip
    return text.rstrip("\n")
