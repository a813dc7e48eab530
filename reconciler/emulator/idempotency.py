"""``clientToken``: a retried request with the same token gets the first answer.

The model marks ``clientToken`` of StartDICOMImportJob and CreateDatastore as an
``idempotencyToken`` (botocore fills in a fresh one when the caller gives none), so a
retry after a timeout must not start a second job or make a second data store. The
same token with different parameters is a ConflictException (a choice: AWS's general
rule for idempotency tokens, the service documents nothing more).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from reconciler.emulator.exceptions import ConflictException

# The table (store.SCHEMA): client_tokens (operation, token, request, response).


def _request(params: dict[str, Any]) -> str:
    return json.dumps(
        {k: v for k, v in params.items() if k != "clientToken"}, sort_keys=True, default=str
    )


def replay(conn: sqlite3.Connection, operation: str, params: dict[str, Any]) -> Any:
    """The response first given for this request's token, or None for a new token."""
    token = params.get("clientToken")
    if not token:
        return None
    row = conn.execute(
        "SELECT request, response FROM client_tokens WHERE operation=? AND token=?",
        (operation, token),
    ).fetchone()
    if row is None:
        return None
    if row["request"] != _request(params):
        raise ConflictException(
            f"clientToken {token!r} was already used for a different {operation} request"
        )
    return json.loads(row["response"])


def remember(
    conn: sqlite3.Connection, operation: str, params: dict[str, Any], response: dict[str, Any]
) -> None:
    token = params.get("clientToken")
    if token:
        conn.execute(
            "INSERT INTO client_tokens (operation, token, request, response) VALUES (?, ?, ?, ?)",
            (operation, token, _request(params), json.dumps(response)),
        )
