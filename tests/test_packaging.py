"""Installs as users install: the distribution name, the floors, the license, the
typing marker, ``python -m reconciler`` and every recipe's install line."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from reconciler import __version__

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
DISTRIBUTION = "healthimaging-reconciler"


def test_python_dash_m_reconciler_is_the_command_line() -> None:
    done = subprocess.run([sys.executable, "-m", "reconciler", "--version"],
                          capture_output=True, text=True, check=False, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"reconciler, version {__version__}"
    bad = subprocess.run([sys.executable, "-m", "reconciler", "plan", "--no-such-option"],
                         capture_output=True, text=True, check=False, timeout=120)  # fmt: skip
    assert bad.returncode == 1 and "No such option" in bad.stderr


def test_metadata_a_user_and_pypi_need() -> None:
    assert PROJECT["name"] == DISTRIBUTION  # `reconciler` on PyPI is another project
    assert PROJECT["version"] == __version__
    assert PROJECT["license"] == "Apache-2.0"  # an SPDX expression, not the old table
    assert PROJECT["license-files"] == ["LICENSE"]
    assert "Apache License" in (ROOT / "LICENSE").read_text()
    assert "Version 2.0, January 2004" in (ROOT / "LICENSE").read_text()
    assert (ROOT / "reconciler" / "py.typed").exists()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["reconciler"]
    assert "Typing :: Typed" in PROJECT["classifiers"]
    assert PROJECT["urls"]
    (requires,) = PYPROJECT["build-system"]["requires"]
    assert Requirement(requires).specifier.contains("77")  # PEP 639 license fields


def test_every_floor_is_pinned_in_the_floors_constraints() -> None:
    pins = {}
    for line in (ROOT / ".ci" / "constraints-floors.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower()] = version
    for dependency in PROJECT["dependencies"]:
        requirement = Requirement(dependency)
        (spec,) = requirement.specifier
        assert spec.operator == ">=", dependency
        pinned = pins[requirement.name.lower()]
        assert requirement.specifier.contains(pinned), f"{pinned} is below {dependency}"
        assert pinned.startswith(spec.version), f"floor {dependency} but CI tests {pinned}"
    assert "bash .ci/floors" in (ROOT / ".ci" / "run").read_text()


def test_every_recipe_installs_the_released_distribution() -> None:
    found = 0
    for path in (ROOT / "examples").rglob("*"):
        if not path.is_file():
            continue
        text = path.read_text()
        assert "OWNER/reconciler" not in text, path
        for spec in re.findall(r"RECONCILER_PIP_SPEC: \"([^\"]+)\"|pip install (?:--?[\w-]+ )*\"([^\"]+)\"",
                               text):  # fmt: skip
            value = spec[0] or spec[1]
            if value == "$RECONCILER_PIP_SPEC":
                continue
            assert value == f"{DISTRIBUTION}=={__version__}", (path, value)
            found += 1
    assert found >= 6
