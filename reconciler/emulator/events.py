"""The service's EventBridge events: what the local HealthImaging announces, and when.

AWS HealthImaging sends an event to EventBridge for every state change of a data store,
an import job and an image set (developer guide, "Using Amazon EventBridge with
HealthImaging"). Each is an EventBridge envelope (``version``, ``id``, ``detail-type``,
``source: aws.medical-imaging``, ``account``, ``time``, ``region``, ``resources``,
``detail``); the ``detail`` members are those EventBridge's schema of the event lists:

- data stores: ``imagingVersion``, ``datastoreId``, ``datastoreName``, ``datastoreStatus``;
- import jobs: ``imagingVersion``, ``datastoreId``, ``jobId``, ``jobName``, ``jobStatus``,
  ``inputS3Uri``, ``outputS3Uri``;
- image sets: ``imagingVersion``, ``datastoreId``, ``imageSetId``, ``imageSetState``,
  ``imageSetWorkflowStatus``.

An image set's ``detail-type`` follows its workflow status (UPDATING → "Image Set
Updating", UPDATED → "Image Set Updated", …): the call that starts a change announces
the LOCKED state, and the end of the change (at its settle time, on the service's
clock) the ACTIVE (or DELETED) one. Choices where the documentation is silent: the
event's ``resources`` name the image set's ARN for image set events and the data
store's for the others; an import that adds instances to an existing primary image set
announces "Image Set Updated"; a copy's source going back to ACTIVE announces nothing
(no event type matches it).

:class:`EventLog` writes each event into the store's ``events`` table in the transaction
that makes the change, only when events are on (``EmulatorConfig.events_queue_url``);
:mod:`.event_delivery` sends them, in that order, to the SQS queue.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import uuid
from collections.abc import Callable

from reconciler.emulator import choices
from reconciler.emulator.config import RuntimeSettings

SOURCE = "aws.medical-imaging"
IMAGING_VERSION = "1.0"

DATASTORE_EVENTS = {
    "CREATING": "Data Store Creating",
    "CREATE_FAILED": "Data Store Creation Failed",
    "ACTIVE": "Data Store Created",
    "DELETING": "Data Store Deleting",
    "DELETED": "Data Store Deleted",
}
IMPORT_JOB_EVENTS = {
    "SUBMITTED": "Import Job Submitted",
    "IN_PROGRESS": "Import Job In Progress",
    "COMPLETED": "Import Job Completed",
    "FAILED": "Import Job Failed",
}
IMAGE_SET_EVENTS = {
    "CREATED": "Image Set Created",
    "COPYING": "Image Set Copying",
    "COPYING_WITH_READ_ONLY_ACCESS": "Image Set Copying With Read Only Access",
    "COPIED": "Image Set Copied",
    "COPY_FAILED": "Image Set Copy Failed",
    "UPDATING": "Image Set Updating",
    # The other primaries of a study an includeStudyImageSets update changes: no event
    # of its own is documented, so they announce what they are doing, an update.
    "UPDATING_FOR_STUDY_CONSISTENCY": "Image Set Updating",
    "UPDATED": "Image Set Updated",
    "UPDATE_FAILED": "Image Set Update Failed",
    "DELETING": "Image Set Deleting",
    "DELETED": "Image Set Deleted",
}


def event_time(at: float) -> str:
    """EventBridge's ``time``: UTC, whole seconds, ``2024-03-14T00:01:00Z``."""
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventLog:
    """Records the events of changes in the store, inside the transaction of the change."""

    def __init__(
        self, settings: RuntimeSettings, arn: Callable[[str, str | None], str], region: str
    ) -> None:
        self.settings = settings
        self.arn = arn
        self.region = region

    @property
    def enabled(self) -> bool:
        return self.settings.config.events_queue_url is not None

    def _record(
        self,
        conn: sqlite3.Connection,
        detail_type: str,
        resource: str,
        *,
        at: float,
        **detail: str | None,
    ) -> None:
        if not self.enabled:
            return
        envelope = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": SOURCE,
            "account": choices.LOCAL_ACCOUNT,
            "time": event_time(at),
            "region": self.region,
            "resources": [resource],
            "detail": {"imagingVersion": IMAGING_VERSION, **detail},
        }
        conn.execute("INSERT INTO events (body) VALUES (?)", (json.dumps(envelope),))

    def image_set(
        self,
        conn: sqlite3.Connection,
        datastore_id: str,
        image_set_id: str,
        *,
        state: str,
        workflow_status: str,
        at: float,
    ) -> None:
        self._record(
            conn,
            IMAGE_SET_EVENTS[workflow_status],
            self.arn(datastore_id, image_set_id),
            at=at,
            datastoreId=datastore_id,
            imageSetId=image_set_id,
            imageSetState=state,
            imageSetWorkflowStatus=workflow_status,
        )

    def import_job(self, conn: sqlite3.Connection, job: sqlite3.Row, *, at: float) -> None:
        """The event of an ``import_jobs`` row's current status."""
        self._record(
            conn,
            IMPORT_JOB_EVENTS[job["status"]],
            self.arn(job["datastore_id"], None),
            at=at,
            datastoreId=job["datastore_id"],
            jobId=job["id"],
            jobName=job["name"],
            jobStatus=job["status"],
            inputS3Uri=job["input_uri"],
            outputS3Uri=job["output_uri"],
        )

    def datastore(
        self, conn: sqlite3.Connection, datastore_id: str, name: str, *, status: str, at: float
    ) -> None:
        self._record(
            conn,
            DATASTORE_EVENTS[status],
            self.arn(datastore_id, None),
            at=at,
            datastoreId=datastore_id,
            datastoreName=name,
            datastoreStatus=status,
        )
