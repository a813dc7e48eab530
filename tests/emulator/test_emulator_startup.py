"""Starting the local HealthImaging does not load the DICOM import code (nor, through it,
pydicom): only an import job or a first seeding needs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys
from pathlib import Path
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.seed import seed
from reconciler.emulator.server import LocalHealthImaging

with LocalHealthImaging(EmulatorConfig(db_path=Path(sys.argv[1]))) as local:
    seed(local.backend)
    print("dicom_import" if "reconciler.emulator.dicom_import" in sys.modules else "lean")
"""


def test_a_seeded_emulator_starts_without_the_import_code(tmp_path: Path) -> None:
    db = tmp_path / "ahi.sqlite"
    run = [sys.executable, "-c", SCRIPT, str(db)]
    first = subprocess.run(run, capture_output=True, text=True, timeout=120, check=True)
    assert first.stdout.split() == ["dicom_import"]  # the first seeding reads the samples
    again = subprocess.run(run, capture_output=True, text=True, timeout=120, check=True)
    assert again.stdout.split() == ["lean"]
