"""The embedded local HealthImaging behind ``--local`` / ``endpoint: local``.

This is the one place where the engine side imports the emulator (the emulator never
imports this package): it runs in-process on an ephemeral loopback port, over a SQLite
file in the project, and seeds pydicom's sample data store on first use, so the
quickstart needs no AWS account. Its imports read and write only below the project
folder (``import_root``), and its SQLite files are private to the user (0600, folder
0700), like every local HealthImaging's.

Quotas stay ON, so the local run throttles like the service would — but scaled by
:data:`LOCAL_QUOTA_SCALE` (20): at the real 0.25 updates per second a six-update demo
would sit idle for 24 s, which teaches nothing a user does not learn from the plan's
cost line. Twenty times faster keeps the shape (updates are still the expensive
calls, 5/s against 500 GetImageSet/s) while a demo takes about a second. The client's
own rate limiter must use the same scale (:func:`reconciler.session.connect.connect`
does) or it would pace at the real quota anyway. The quotas scaled are the published
``standard`` table (every image-set write 0.25/s), the one plan cost lines assume,
not the emulator's default (the page's newer text, updates at 10/s).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from reconciler.emulator import seed as seeding
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.server import LocalHealthImaging
from reconciler.errors import ReconcilerError

LOCAL_QUOTA_SCALE = 20.0
LOCAL_LOCK_HOLD_SECONDS = 0.2  # long enough that the engine really waits for LOCKED to end


def start_local(
    db_path: Path,
    *,
    seed: bool = True,
    quota_scale: float = LOCAL_QUOTA_SCALE,
    lock_hold_seconds: float = LOCAL_LOCK_HOLD_SECONDS,
    import_root: Path | None = None,
) -> tuple[LocalHealthImaging, str]:
    """Start the local HealthImaging over ``db_path``; returns it (call ``stop()``) and
    its URL. With ``seed``, the sample data store is created unless it exists.
    ``import_root`` is the project folder (None: the current folder)."""
    config = EmulatorConfig(
        db_path=db_path,
        quotas_enabled=True,
        quota_profile="standard",
        quota_scale=quota_scale,
        lock_hold_seconds=lock_hold_seconds,
        import_root=import_root,
    )
    try:
        local = LocalHealthImaging(config)
    except (OSError, sqlite3.Error) as exc:
        raise ReconcilerError(
            f"cannot open the local HealthImaging database {db_path} ({exc}); "
            "delete it to start afresh, or set localDb in reconciler.yaml"
        ) from exc
    try:
        if seed:
            seeding.seed(local.backend)  # a no-op once the sample data store exists
        url = local.start()
    except BaseException:
        local.stop()
        raise
    return local, url
