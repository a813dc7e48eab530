"""The import root: the one folder StartDICOMImportJob may read from and write into.

The real service reads and writes only the S3 buckets its data access role may use;
the local one stands in with a folder (the project folder by default, ``emulator serve
--import-root DIR`` for another). A path naming ``..``, an absolute path elsewhere, or
a symlink that leads out of the root is refused as the service refuses a bucket the
role cannot reach: AccessDeniedException, with the reason.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.emulator.exceptions import AccessDeniedException, ValidationException


def resolve_root(configured: Path | None) -> Path:
    """The import root as an absolute, symlink-free path (None: the current folder)."""
    return (configured if configured is not None else Path.cwd()).resolve()


def confine(path: Path, root: Path, member: str) -> Path:
    """``path`` (relative ones are taken below ``root``) resolved, if it stays in ``root``."""
    if ".." in path.parts:
        raise ValidationException(f"{member}: {path} must not contain '..'")
    resolved = (root / path).resolve()  # root / an absolute path is that path
    if not resolved.is_relative_to(root):
        raise AccessDeniedException(
            f"{member}: {path} is outside the import root {root}"
            + (" (through a symlink)" if (root / path).absolute() != resolved else "")
            + "; the local HealthImaging reads and writes only there (emulator serve "
            "--import-root widens it)"
        )
    return resolved
