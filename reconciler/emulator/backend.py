"""The local HealthImaging's backend: one method per operation, over one SQLite file.

Like a moto backend: the HTTP layer (server.py, protocol.py) parses a request into the
operation's input members, calls the method named for the operation, and serializes
the result; everything the service decides happens here and in the modules it uses.
"""

from __future__ import annotations

import math
import re
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from reconciler.emulator import choices
from reconciler.emulator.config import EmulatorConfig, RuntimeSettings
from reconciler.emulator.datastores import Datastores
from reconciler.emulator.events import EventLog
from reconciler.emulator.exceptions import AccessDeniedException, ValidationException
from reconciler.emulator.frame_reads import FrameReads
from reconciler.emulator.imageset_writes import ImageSetWrites
from reconciler.emulator.imports import ImportJobs
from reconciler.emulator.protocol import service_model
from reconciler.emulator.quotas import Quotas
from reconciler.emulator.search import Search
from reconciler.emulator.store import Store

WRITE_OPERATIONS = frozenset(
    {
        "CreateDatastore", "DeleteDatastore", "StartDICOMImportJob", "UpdateImageSetMetadata",
        "CopyImageSet", "DeleteImageSet", "TagResource", "UntagResource",
    }
)  # fmt: skip


def milliseconds(clock: Callable[[], float]) -> Callable[[], float]:
    """``clock`` cut to whole milliseconds: the service's timestamps carry three
    decimals, and a time a client read back must compare equal in a later filter."""
    return lambda: math.floor(clock() * 1000) / 1000


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _next_due(conn: sqlite3.Connection) -> float | None:
    """When the next pending change of an image set or a data store settles."""
    row = conn.execute(
        "SELECT MIN(at) FROM (SELECT MIN(settle_at) AS at FROM image_sets"
        " WHERE settle_at IS NOT NULL UNION ALL SELECT MIN(settle_at) FROM datastores"
        " WHERE status IN ('CREATING', 'DELETING'))"
    ).fetchone()
    due: float | None = row[0]
    return due


class ImageSetOperations(ImageSetWrites, Search, FrameReads):
    """Reads, writes and search of image sets over one store."""


class Backend:
    def __init__(self, config: EmulatorConfig, clock: Callable[[], float] = time.time) -> None:
        clock = milliseconds(clock)
        self.config = config
        self.settings = RuntimeSettings(config)
        self.store = Store(config.db_path)
        self.quotas = Quotas(self.settings)
        self.region = choices.DEFAULT_REGION
        self.events = EventLog(self.settings, self.arn, self.region)
        self.image_sets = ImageSetOperations(
            self.store, self.settings, self.arn, clock, events=self.events
        )
        self.datastores = Datastores(
            self.store,
            self.settings,
            self.arn,
            clock=clock,
            events=self.events,
            settle_image_sets=self.image_sets.settle_due,
        )
        self.imports = ImportJobs(self.image_sets, clock)
        self.clock = clock
        self._handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}
        for operation in service_model().operation_names:
            for component in (self.image_sets, self.datastores, self.imports):
                method = getattr(component, _snake(operation), None)
                if method is not None:
                    self._handlers[operation] = method

    def arn(self, datastore_id: str, image_set_id: str | None) -> str:
        account = choices.LOCAL_ACCOUNT
        base = f"arn:aws:medical-imaging:{self.region}:{account}:datastore/{datastore_id}"
        return f"{base}/imageset/{image_set_id}" if image_set_id else base

    def handler(self, operation: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
        method = self._handlers.get(operation)
        if method is None:
            raise ValidationException(f"{operation} is not supported by the local HealthImaging")
        return method

    def check_access(self, operation: str) -> None:
        if self.settings.config.read_only and operation in WRITE_OPERATIONS:
            raise AccessDeniedException(
                f"User is not authorized to perform: medical-imaging:{operation} "
                "(the local HealthImaging runs read-only)"
            )

    def handle(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        self.check_access(operation)
        return self.handler(operation)(params)

    def settle_due(self) -> float | None:
        """Finish every change whose time has come, as the next request would, and return
        the time of the next one (None: nothing pending). This lets events leave on time
        while no request arrives; it writes only when something is due."""
        now = self.clock()
        with self.store.read() as conn:
            next_due = _next_due(conn)
        if next_due is not None and next_due <= now:
            with self.store.write() as conn:
                self.image_sets.settle_due(conn, now)
                self.datastores.settle(conn)
                next_due = _next_due(conn)
        return next_due

    def close(self) -> None:
        self.store.close()
