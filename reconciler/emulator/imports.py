"""DICOM import jobs: local folders in, image sets and a job output manifest out.

The real service reads S3; the local one reads a folder (a path or a ``file://`` URI)
and writes its report where the service would, below ``outputS3Uri``:
``<out>/<datastoreId>-DicomImport-<jobId>/job-output-manifest.json`` with
``SUCCESS/success.ndjson``, ``SUCCESS/imageSetsSummary.json`` and
``FAILURE/failure.ndjson``.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from boto3.exceptions import Boto3Error
from botocore.exceptions import BotoCoreError, ClientError

from reconciler.emulator import choices, documents, idempotency, s3
from reconciler.emulator.datastores import LOSSLESS_SYNTAX, lossless_format
from reconciler.emulator.exceptions import ResourceNotFoundException, ValidationException
from reconciler.emulator.frame_reads import store_frames
from reconciler.emulator.imagesets import ImageSets, Params, Result
from reconciler.emulator.import_root import confine, resolve_root
from reconciler.emulator.paging import Keyset

if TYPE_CHECKING:
    # pydicom is imported by the import itself, not by every start of the emulator.
    from reconciler.emulator.dicom_import import ImportBatch

_LEVELS_COMPARED = ("Patient", "Study")


def local_path(uri: str, member: str) -> Path:
    """The folder a ``file://`` URI or plain path names; S3 without the local S3 is
    refused with a reason."""
    if s3.is_s3(uri):
        raise ValidationException(
            f"{member}: the local HealthImaging reads local folders (a path or file:// URI); "
            "for s3:// URIs start it with S3 beside it: reconciler emulator serve --s3"
        )
    if uri.startswith("file://"):
        return Path(unquote(urlparse(uri).path))
    return Path(uri)


def job_output_uri(prefix: str, datastore_id: str, job_id: str) -> str:
    """Where a job's report goes, as GetDICOMImportJob's ``outputS3Uri`` names it: the
    submitted prefix, then ``<datastoreId>-DicomImport-<jobId>/`` (the AWS CLI
    reference's example). A prefix without a trailing ``/`` gets one (a choice)."""
    separator = "" if prefix.endswith("/") else "/"
    return f"{prefix}{separator}{datastore_id}-DicomImport-{job_id}/"


def _check_owner(owner: str | None) -> None:
    """``inputOwnerAccountId`` is the account the input must belong to (S3's expected
    bucket owner): everything the local HealthImaging reads belongs to its own account."""
    if owner is not None and owner != choices.LOCAL_ACCOUNT:
        raise PermissionError(
            f"Access Denied: the input belongs to account {choices.LOCAL_ACCOUNT}, "
            f"not to inputOwnerAccountId {owner}"
        )


def image_set_id_for(datastore_id: str, study_uid: str, ordinal: int) -> str:
    """Deterministic IDs: the same files always give the same image set IDs."""
    digest = hashlib.sha256(f"{datastore_id}/{study_uid}/{ordinal}".encode()).hexdigest()
    return digest[:32]


def _conflicts(existing: documents.Document, new: documents.Document) -> bool:
    """True when the new data disagrees with values the existing image set holds."""
    for level in _LEVELS_COMPARED:
        old = existing.get(level, {}).get("DICOM", {})
        for key, value in new.get(level, {}).get("DICOM", {}).items():
            if key in old and old[key] != value:
                return True
    old_series = existing["Study"].get("Series", {})
    for uid, series in new["Study"].get("Series", {}).items():
        if uid in old_series:
            old = old_series[uid].get("DICOM", {})
            if any(k in old and old[k] != v for k, v in series.get("DICOM", {}).items()):
                return True
    return False


def _stored_syntax(doc: documents.Document, lossless: str) -> None:
    """Every instance with frames names the syntax its frames are kept in: as imported
    (set by the import), else the data store's lossless storage format (the developer
    guide's "Supported transfer syntaxes")."""
    for series in doc["Study"].get("Series", {}).values():
        for instance in series.get("Instances", {}).values():
            if instance.get("ImageFrames"):
                instance.setdefault("StoredTransferSyntaxUID", lossless)


class ImportJobs:
    def __init__(self, image_sets: ImageSets, clock: Callable[[], float] = time.time) -> None:
        self.image_sets = image_sets
        self.store = image_sets.store
        self.clock = clock
        self.root = resolve_root(image_sets.settings.config.import_root)
        with self.store.write() as conn:  # jobs cut short by a restart cannot finish
            cut_short = conn.execute(
                "SELECT id FROM import_jobs WHERE status IN ('SUBMITTED','IN_PROGRESS')"
                " ORDER BY submitted_at, id"
            ).fetchall()
            for job in cut_short:
                self._set_status(
                    conn, job["id"], "FAILED", "interrupted by a restart of the local HealthImaging"
                )

    def _set_status(
        self, conn: sqlite3.Connection, job_id: str, status: str, message: str | None = None
    ) -> None:
        """Move a job on (a job that ends gets its end time) and announce it."""
        now = self.clock()
        ended = now if status in ("COMPLETED", "FAILED") else None
        conn.execute(
            "UPDATE import_jobs SET status=?, message=?, ended_at=? WHERE id=?",
            (status, message, ended, job_id),
        )
        job = conn.execute("SELECT * FROM import_jobs WHERE id=?", (job_id,)).fetchone()
        self.image_sets.events.import_job(conn, job, at=now)

    # -- operations ------------------------------------------------------------------
    def _place(self, uri: str, member: str) -> Path | str:
        """A local folder (confined to the import root), or an s3:// URI of the local S3."""
        if s3.is_s3(uri) and self.image_sets.settings.config.s3_endpoint:
            s3.split(uri, member)  # a well-formed s3://bucket/prefix
            return uri
        return confine(local_path(uri, member), self.root, member)

    def start_dicom_import_job(self, p: Params) -> Result:
        source = self._place(p["inputS3Uri"], "inputS3Uri")
        output = self._place(p["outputS3Uri"], "outputS3Uri")
        if isinstance(source, Path) and not source.is_dir():
            raise ValidationException(f"inputS3Uri: {source} is not a folder")
        job_id = uuid.uuid4().hex
        now = self.clock()
        job_output = job_output_uri(p["outputS3Uri"], p["datastoreId"], job_id)
        with self.store.write() as conn:
            first = idempotency.replay(conn, "StartDICOMImportJob", p)
            if first is not None:  # a retry: the job the first call started
                return dict(first)
            if not conn.execute(
                "SELECT 1 FROM datastores WHERE id=?", (p["datastoreId"],)
            ).fetchone():
                raise ResourceNotFoundException(f"Datastore {p['datastoreId']} not found")
            configuration = p.get("importConfiguration")
            conn.execute(
                "INSERT INTO import_jobs (id, datastore_id, name, status, role_arn, input_uri,"
                " output_uri, submitted_at, client_token, import_configuration,"
                " input_owner_account_id) VALUES (?, ?, ?, 'SUBMITTED', ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    p["datastoreId"],
                    p.get("jobName"),
                    p["dataAccessRoleArn"],
                    p["inputS3Uri"],
                    job_output,
                    now,
                    p.get("clientToken"),
                    json.dumps(configuration) if configuration else None,
                    p.get("inputOwnerAccountId"),
                ),
            )
            job = conn.execute("SELECT * FROM import_jobs WHERE id=?", (job_id,)).fetchone()
            self.image_sets.events.import_job(conn, job, at=now)
            result: Result = {"datastoreId": p["datastoreId"], "jobId": job_id,
                              "jobStatus": "SUBMITTED", "submittedAt": now}  # fmt: skip
            idempotency.remember(conn, "StartDICOMImportJob", p, result)
        worker = threading.Thread(
            target=self.run_job,
            args=(job_id, p["datastoreId"], source, output, job_output),
            name=f"import-{job_id}",
            daemon=True,
        )
        worker.start()
        return result

    def _job(self, conn: sqlite3.Connection, datastore_id: str, job_id: str) -> sqlite3.Row:
        row: sqlite3.Row | None = conn.execute(
            "SELECT * FROM import_jobs WHERE id=? AND datastore_id=?", (job_id, datastore_id)
        ).fetchone()
        if row is None:
            raise ResourceNotFoundException(f"Import job {job_id} not found")
        return row

    @staticmethod
    def _properties(row: sqlite3.Row) -> Result:
        return {
            "jobId": row["id"],
            "jobName": row["name"],
            "jobStatus": row["status"],
            "datastoreId": row["datastore_id"],
            "dataAccessRoleArn": row["role_arn"],
            "endedAt": row["ended_at"],
            "submittedAt": row["submitted_at"],
            "inputS3Uri": row["input_uri"],
            "outputS3Uri": row["output_uri"],
            "message": row["message"],
            "importConfiguration": (
                json.loads(row["import_configuration"]) if row["import_configuration"] else None
            ),
        }

    def get_dicom_import_job(self, p: Params) -> Result:
        with self.store.read() as conn:
            return {
                "jobProperties": self._properties(self._job(conn, p["datastoreId"], p["jobId"]))
            }

    def list_dicom_import_jobs(self, p: Params) -> Result:
        status = p.get("jobStatus")
        keyset = Keyset.of(p, default_size=50, context=f"jobs:{p['datastoreId']}:{status}")
        after, after_args = keyset.condition(("submitted_at", "id"), descending=True)
        with self.store.read() as conn:
            rows = conn.execute(
                f"SELECT * FROM import_jobs WHERE datastore_id=? AND status=IFNULL(?, status)"
                f" AND {after} ORDER BY submitted_at DESC, id DESC LIMIT ?",
                (p["datastoreId"], status, *after_args, keyset.limit),
            ).fetchall()
        chosen, token = keyset.split(rows, lambda row: (row["submitted_at"], row["id"]))
        return {"jobSummaries": [self._properties(r) for r in chosen], "nextToken": token}

    # -- the work --------------------------------------------------------------------
    def run_job(
        self,
        job_id: str,
        datastore_id: str,
        source: Path | str,
        output: Path | str,
        job_output: str,
    ) -> None:
        """Import a folder or S3 prefix; every outcome, even an unexpected one, ends in the
        job's row. The report goes to the job's own folder below ``output``."""
        from reconciler.emulator.dicom_import import read_folder
        from reconciler.emulator.dicom_import.json_metadata import apply_mappings

        with self.store.write() as conn:
            self._set_status(conn, job_id, "IN_PROGRESS")
            job = self._job(conn, datastore_id, job_id)
        endpoint = self.image_sets.settings.config.s3_endpoint or ""
        try:
            _check_owner(job["input_owner_account_id"])
            with tempfile.TemporaryDirectory(prefix="reconciler-import-") as scratch:
                names: dict[str, str] = {}
                if isinstance(source, str):  # s3://: fetched into a private scratch folder
                    folder = Path(scratch) / "in"
                    folder.mkdir()
                    names = s3.download(endpoint, source, folder)
                    batch = read_folder(folder, within=folder)
                else:
                    folder = source
                    batch = read_folder(source, within=self.root)
                if job["import_configuration"]:
                    configuration = json.loads(job["import_configuration"])
                    mappings = configuration["dicomJsonMetadataImportConfiguration"]
                    apply_mappings(batch, folder, mappings["dicomMetadataMappings"])
                summaries = self.import_batch(datastore_id, batch)
                uris = (str(source), job_output)
                job_folder = job_output.rstrip("/").rsplit("/", 1)[-1]
                if isinstance(output, str):
                    report = Path(scratch) / "out"
                    self._write_report(report, datastore_id, job_id, uris, batch, summaries, names)
                    s3.upload(endpoint, report, job_output)
                else:
                    report = confine(output, self.root, "outputS3Uri") / job_folder
                    self._write_report(report, datastore_id, job_id, uris, batch, summaries, names)
            status, message = "COMPLETED", None
        except (
            OSError,
            ValueError,
            sqlite3.Error,
            BotoCoreError,
            ClientError,
            Boto3Error,
        ) as error:
            status, message = "FAILED", f"{type(error).__name__}: {error}"
        with self.store.write() as conn:
            self._set_status(conn, job_id, status, message)

    def import_batch(self, datastore_id: str, batch: ImportBatch) -> list[dict[str, Any]]:
        """Store each study of ``batch``: merged into its primary image set or a new one."""
        summaries = []
        with self.store.write() as conn:
            for study_uid, doc in batch.documents.items():
                summaries.append(self._import_study(conn, datastore_id, study_uid, doc))
            store_frames(conn, batch.frames)
        return summaries

    def _import_study(
        self, conn: sqlite3.Connection, datastore_id: str, study_uid: str, doc: documents.Document
    ) -> dict[str, Any]:
        from reconciler.emulator.dicom_import import merge_into

        sets = self.image_sets
        _stored_syntax(doc, LOSSLESS_SYNTAX[lossless_format(conn, datastore_id)])
        primary = conn.execute(
            "SELECT * FROM image_sets WHERE datastore_id=? AND study_uid=? AND is_primary=1"
            " AND state='ACTIVE'",
            (datastore_id, study_uid),
        ).fetchone()
        if primary is not None:
            existing = sets.document(conn, primary["id"], primary["settled_version"])
            if not _conflicts(existing, doc):
                merge_into(existing, doc)
                version = primary["latest_version"] + 1
                sets.add_version(conn, primary["id"], version, existing, "UPDATED")
                now = self.clock()
                conn.execute(
                    "UPDATE image_sets SET latest_version=?, settled_version=?, updated_at=?,"
                    " workflow_status='UPDATED' WHERE id=?",
                    (version, version, now, primary["id"]),
                )
                sets.index(conn, primary["id"], existing)
                sets.touch(conn, primary["id"])
                sets.events.image_set(
                    conn,
                    datastore_id,
                    primary["id"],
                    state="ACTIVE",
                    workflow_status="UPDATED",
                    at=now,
                )
                return {"imageSetId": primary["id"], "imageSetVersion": str(version),
                        "isPrimary": True, "studyInstanceUID": study_uid}  # fmt: skip
        ordinal = conn.execute(
            "SELECT COUNT(*) FROM image_sets WHERE datastore_id=? AND study_uid=?",
            (datastore_id, study_uid),
        ).fetchone()[0]
        image_set_id = image_set_id_for(datastore_id, study_uid, ordinal)
        while conn.execute("SELECT 1 FROM image_sets WHERE id=?", (image_set_id,)).fetchone():
            ordinal += 1
            image_set_id = image_set_id_for(datastore_id, study_uid, ordinal)
        sets.create(conn, datastore_id, image_set_id, doc, is_primary=primary is None)
        return {"imageSetId": image_set_id, "imageSetVersion": "1",
                "isPrimary": primary is None, "studyInstanceUID": study_uid}  # fmt: skip

    @staticmethod
    def _write_report(
        output: Path,
        datastore_id: str,
        job_id: str,
        uris: tuple[str, str],
        batch: ImportBatch,
        summaries: list[dict[str, Any]],
        names: dict[str, str],
    ) -> None:
        folder = output
        (folder / "SUCCESS").mkdir(parents=True, exist_ok=True)
        (folder / "FAILURE").mkdir(parents=True, exist_ok=True)
        by_study = {s["studyInstanceUID"]: s for s in summaries}
        with (folder / "SUCCESS" / "success.ndjson").open("w", encoding="utf-8") as out:
            for item in batch.imported:
                summary = by_study[item.study_uid]
                out.write(json.dumps({
                    "inputFile": names.get(item.path, item.path), "importResponse": {
                        "imageSetId": summary["imageSetId"], "isPrimary": summary["isPrimary"],
                        "studyInstanceUID": item.study_uid, "seriesInstanceUID": item.series_uid,
                        "sopInstanceUID": item.sop_uid}}) + "\n")  # fmt: skip
        with (folder / "FAILURE" / "failure.ndjson").open("w", encoding="utf-8") as out:
            for failed in batch.failed:
                out.write(json.dumps({"inputFile": names.get(failed.path, failed.path),
                                      "exception": failed.reason}) + "\n")  # fmt: skip
        (folder / "SUCCESS" / "imageSetsSummary.json").write_text(
            json.dumps({"imageSetsSummary": summaries}, indent=2), encoding="utf-8"
        )
        (folder / "job-output-manifest.json").write_text(
            json.dumps(
                {
                    "jobSummary": {
                        "jobId": job_id,
                        "datastoreId": datastore_id,
                        "inputS3Uri": uris[0],
                        "outputS3Uri": uris[1],
                        "successOutputS3Uri": f"{uris[1]}SUCCESS/",
                        "failureOutputS3Uri": f"{uris[1]}FAILURE/",
                        "numberOfScannedFiles": len(batch.imported) + len(batch.failed),
                        "numberOfImportedFiles": len(batch.imported),
                        "numberOfFilesWithCustomerError": len(batch.failed),
                        "numberOfFilesWithServerError": 0,
                        "numberOfGeneratedImageSets": len(summaries),
                        "imageSetsSummary": summaries,
                    }
                },
                indent=2,
            ),
            encoding="utf-8",
        )
