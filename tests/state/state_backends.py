"""One behavioural suite, two backends: every test taking ``backend`` (or ``state``) runs
against the local backend (a temporary project's ``.reconciler/state``) and against
the S3 backend (a fresh bucket of moto's S3 server, one server per test process).

A test module imports the fixtures it uses, with those they use (``kind``, ``opener``)::

    from state_backends import backend as backend  # the fixtures
    from state_backends import kind as kind
    from state_backends import opener as opener
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.config import parse_state
from reconciler.state import Backend, State
from reconciler.state.open import open_backend
from tests.state_support import KMS_KEY, SCOPE, Opener


@pytest.fixture(params=["local", "s3"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def opener(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Opener:
    """Opens the backend under test afresh each call — a second reader or writer of the
    same state, as another process (another runner, a laptop) opens it."""
    project = tmp_path / "project"
    project.mkdir()
    if kind == "local":
        spec = parse_state("local", "test")
    else:
        bucket: Any = request.getfixturevalue("state_bucket")
        spec = parse_state(bucket.url("team/state"), "test")

    def open_it() -> Backend:
        return open_backend(spec, project=project, region="us-east-1", kms_key_id=KMS_KEY)

    return open_it


@pytest.fixture
def backend(opener: Opener) -> Backend:
    return opener()


@pytest.fixture
def state(backend: Backend) -> State:
    return State(backend, SCOPE)
