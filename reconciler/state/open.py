"""Opening the configured backend (:class:`reconciler.config.StateSpec`)."""

from __future__ import annotations

from pathlib import Path

from reconciler.config import STATE_DIR, StateSpec
from reconciler.state.backend import Backend
from reconciler.state.local import LocalBackend

LOCAL_FOLDER = STATE_DIR / "state"  # the local backend, under the project's root


def open_backend(
    spec: StateSpec,
    *,
    project: Path,
    profile: str | None = None,
    region: str | None = None,
    kms_key_id: str | None = None,
) -> Backend:
    """The backend ``spec`` names: the project's ``.reconciler/state`` for ``local``;
    the bucket and prefix of an ``s3://`` URL (boto3 imported only then)."""
    if spec.kind == "local":
        return LocalBackend(project / LOCAL_FOLDER, project)
    from reconciler.state.s3 import S3Backend, make_client

    assert spec.url is not None
    return S3Backend(spec.url, make_client(profile, region), kms_key_id=kms_key_id)
