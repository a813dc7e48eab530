"""S3 beside the local HealthImaging (moto's): files go in with `aws s3 cp`, the import
takes s3:// URIs, and boto3's S3 client reads the job's output manifest back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import make_client, serve, wait_for
from test_emulator_datastores_imports import ROLE, sample_dir

from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.s3 import LocalS3
from reconciler.emulator.server import LocalHealthImaging


@pytest.fixture
def s3_url() -> Iterator[str]:
    with LocalS3() as local_s3:
        yield local_s3.url


def s3_client(url: str) -> Any:  # a plain boto3 client, as any program makes one
    return boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="local", aws_secret_access_key="local")  # fmt: skip


def aws_s3_cp(url: str, folder: Path, target: str) -> None:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
           "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "awscli", "s3", "cp", "--recursive", "--only-show-errors",
         str(folder), target, "--endpoint-url", url],
        check=True, env=env, timeout=120,
    )  # fmt: skip


def test_import_from_s3_and_read_the_manifest_back(s3_url: str, tmp_path: Path) -> None:
    s3 = s3_client(s3_url)
    for bucket in ("dicom-input", "dicom-output"):
        s3.create_bucket(Bucket=bucket)
    aws_s3_cp(s3_url, sample_dir(tmp_path, ["CT_small.dcm", "MR_small.dcm"]),
              "s3://dicom-input/input/")  # fmt: skip
    config = EmulatorConfig(db_path=tmp_path / "db.sqlite", quotas_enabled=False,
                            lock_hold_seconds=0.0, s3_endpoint=s3_url)  # fmt: skip
    with LocalHealthImaging(config) as local:
        client = make_client(local.url)
        datastore = client.create_datastore(datastoreName="s3")["datastoreId"]
        job = client.start_dicom_import_job(
            datastoreId=datastore, dataAccessRoleArn=ROLE,
            inputS3Uri="s3://dicom-input/input/", outputS3Uri="s3://dicom-output/output/",
        )  # fmt: skip

        def done() -> bool:
            props = client.get_dicom_import_job(datastoreId=datastore, jobId=job["jobId"])
            return bool(props["jobProperties"]["jobStatus"] in ("COMPLETED", "FAILED"))

        wait_for(done, timeout=60)
        props = client.get_dicom_import_job(datastoreId=datastore, jobId=job["jobId"])[
            "jobProperties"
        ]
        assert props["jobStatus"] == "COMPLETED", props.get("message")
        output = props["outputS3Uri"]
        assert output == f"s3://dicom-output/output/{datastore}-DicomImport-{job['jobId']}/"
        bucket, key = output.split("/")[2], "/".join(output.split("/")[3:])
        body = s3.get_object(Bucket=bucket, Key=key + "job-output-manifest.json")["Body"]
        summary = json.load(body)["jobSummary"]
        ids = [item["imageSetId"] for item in summary["imageSetsSummary"]]
        assert len(ids) == 2
        for image_set in ids:
            assert client.get_image_set(datastoreId=datastore, imageSetId=image_set)
        success = s3.get_object(Bucket=bucket, Key=key + "SUCCESS/success.ndjson")["Body"]
        inputs = sorted(json.loads(line)["inputFile"] for line in success.read().splitlines())
        assert inputs == ["s3://dicom-input/input/CT_small.dcm",
                          "s3://dicom-input/input/MR_small.dcm"]  # fmt: skip
        # A missing output bucket fails the job, with the reason in its message.
        failed = client.start_dicom_import_job(
            datastoreId=datastore, dataAccessRoleArn=ROLE,
            inputS3Uri="s3://dicom-input/input/", outputS3Uri="s3://no-such-bucket/out/",
        )  # fmt: skip

        def ended() -> bool:
            job = client.get_dicom_import_job(datastoreId=datastore, jobId=failed["jobId"])
            return bool(job["jobProperties"]["jobStatus"] in ("COMPLETED", "FAILED"))

        wait_for(ended, timeout=60)
        job_props = client.get_dicom_import_job(datastoreId=datastore, jobId=failed["jobId"])
        assert job_props["jobProperties"]["jobStatus"] == "FAILED"
        assert "NoSuchBucket" in job_props["jobProperties"]["message"]


def test_serve_with_s3_prints_the_second_port(tmp_path: Path) -> None:
    with serve(
        tmp_path / "db.sqlite", "--s3", until=r"^S3 on (http://127\.0\.0\.1:\d+)$"
    ) as served:
        s3 = s3_client(served.found.group(1))
        s3.create_bucket(Bucket="from-the-cli")
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["from-the-cli"]
    assert served.process.returncode == 0
