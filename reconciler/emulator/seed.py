"""Deterministic sample data: pydicom's bundled DICOM files in a fixed data store.

The same files always give the same data store ID and image set IDs, so the shipped
manifests and the docs can name them.

The seed models an archive partly imported before HealthImaging introduced primary
image sets (mid 2025): the studies of ``LEGACY_SAMPLE_FILES`` are non-primary, as such
older image sets are, so Patient- and Series-level corrections (which the service
refuses on primary image sets) can be tried on them; every other study is primary.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from reconciler.emulator.backend import Backend

SEED_DATASTORE_NAME = "reconciler-local"
SEED_DATASTORE_ID = hashlib.sha256(b"reconciler-local-seed").hexdigest()[:32]
LEGACY_SAMPLE_FILES = ("CT_small.dcm", "MR_small.dcm")


@dataclass(frozen=True)
class SeedResult:
    datastore_id: str
    image_sets: int
    files_imported: int
    files_failed: int
    created: bool  # False when the data store was seeded before


def seed(backend: Backend) -> SeedResult:
    """Create and fill the sample data store unless it exists already."""
    with backend.store.read() as conn:
        exists = conn.execute(
            "SELECT 1 FROM datastores WHERE id=?", (SEED_DATASTORE_ID,)
        ).fetchone()
        count = conn.execute(
            "SELECT COUNT(*) FROM image_sets WHERE datastore_id=?", (SEED_DATASTORE_ID,)
        ).fetchone()[0]
    if exists:
        return SeedResult(SEED_DATASTORE_ID, count, 0, 0, created=False)
    from reconciler.emulator.dicom_import import read_files, sample_files  # pydicom: only now

    backend.datastores.create(SEED_DATASTORE_NAME, datastore_id=SEED_DATASTORE_ID, active=True)
    batch = read_files(sample_files())
    summaries = backend.imports.import_batch(SEED_DATASTORE_ID, batch)
    legacy = {f.study_uid for f in batch.imported if Path(f.path).name in LEGACY_SAMPLE_FILES}
    with backend.store.write() as conn:
        conn.executemany(
            "UPDATE image_sets SET is_primary=0 WHERE datastore_id=? AND study_uid=?",
            [(SEED_DATASTORE_ID, uid) for uid in sorted(legacy)],
        )
    return SeedResult(
        SEED_DATASTORE_ID,
        len({s["imageSetId"] for s in summaries}),
        len(batch.imported),
        len(batch.failed),
        created=True,
    )
