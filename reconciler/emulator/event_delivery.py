"""Sending the recorded events (events.py) to the SQS queue, in a thread of their own.

EventBridge delivers a service's events within moments of the change, whether or not
anyone calls the service. So while events are on, this thread also finishes the
changes whose time has come (LOCKED → ACTIVE, DELETING → DELETED) without waiting for
the next request, then sends every event waiting in the store, oldest first, ten to a
``SendMessageBatch``, and deletes what SQS accepted. It wakes after every committed
write and when the next pending change is due. If SQS cannot be reached, the events
stay in the store and are sent when it can (the outbox survives a restart).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from reconciler.emulator import event_queue
from reconciler.emulator.backend import Backend

log = logging.getLogger("reconciler.emulator")
BATCH = 10  # SendMessageBatch's limit
IDLE_SECONDS = 1.0  # the longest nap: a change made by another process is seen as late
_FAILURES = (BotoCoreError, ClientError, sqlite3.Error, OSError)


class EventDelivery:
    def __init__(self, backend: Backend, queue_url: str) -> None:
        self.backend = backend
        self.queue_url = queue_url
        self._sqs: Any = event_queue.client(queue_url)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        backend.store.on_commit(self._wake.set)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="local-healthimaging-events", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Send what is waiting (best effort), then stop."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def send_pending(self) -> int:
        """Send every waiting event, oldest first; returns how many SQS accepted."""
        sent = 0
        while True:
            with self.backend.store.read() as conn:
                rows = conn.execute(
                    "SELECT seq, body FROM events ORDER BY seq LIMIT ?", (BATCH,)
                ).fetchall()
            if not rows:
                return sent
            answer = self._sqs.send_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(row["seq"]), "MessageBody": row["body"]} for row in rows],
            )
            accepted = [int(entry["Id"]) for entry in answer.get("Successful", [])]
            with self.backend.store.write() as conn:
                conn.executemany("DELETE FROM events WHERE seq=?", [(seq,) for seq in accepted])
            sent += len(accepted)
            failed = answer.get("Failed") or []
            if failed:
                raise ClientError(
                    {
                        "Error": {
                            "Code": failed[0].get("Code", ""),
                            "Message": failed[0].get("Message", ""),
                        }
                    },
                    "SendMessageBatch",
                )

    def _run(self) -> None:
        backoff = 0.0
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                try:
                    next_due = self.backend.settle_due()
                    self.send_pending()
                except _FAILURES as failure:
                    if not backoff:
                        log.warning(
                            "events could not be sent to %s (%s); retrying", self.queue_url, failure
                        )
                    backoff = min(max(backoff * 2, 0.1), 5.0)
                    self._stopping.wait(backoff)
                    continue
                backoff = 0.0
                nap = IDLE_SECONDS
                if next_due is not None:
                    nap = min(max(next_due - self.backend.clock(), 0.0), IDLE_SECONDS)
                self._wake.wait(nap)
            self.send_pending()
        except _FAILURES as failure:
            log.warning("events left unsent at stop (%s); they are sent on the next start", failure)
        finally:
            self.backend.store.close()  # this thread's connection
