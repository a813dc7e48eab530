"""S3 beside the local HealthImaging: moto's S3 server, an optional extra.

Real import workflows put DICOM files in S3, import with ``s3://`` URIs and read the
job's output manifest back from S3. ``reconciler emulator serve --s3`` starts moto's
S3 (``pip install 'healthimaging-reconciler[s3]'``) on a second loopback port and prints it as
``S3 on http://127.0.0.1:PORT``; the local HealthImaging then reads ``s3://`` inputs
from it and writes each job's report into it (``EmulatorConfig.s3_endpoint``). moto
keeps the buckets in memory: they last as long as the process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

from reconciler.emulator.exceptions import ValidationException
from reconciler.emulator.moto_server import MotoServer

INSTALL_HINT = "pip install 'healthimaging-reconciler[s3]'"


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def split(uri: str, member: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` → ``("bucket", "some/prefix/")``."""
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValidationException(f"{member}: {uri!r} is not an s3://bucket/prefix URI")
    return parts.netloc, parts.path.lstrip("/")


def client(endpoint: str) -> Any:
    """A boto3 S3 client of the local S3 (path-style: buckets are not host names here)."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard"}),
    )


def download(endpoint: str, uri: str, into: Path) -> dict[str, str]:
    """Every object below ``uri`` into the folder ``into``; returns local path → its URI."""
    bucket, prefix = split(uri, "inputS3Uri")
    s3 = client(endpoint)
    names: dict[str, str] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key: str = item["Key"]
            relative = key[len(prefix) :].lstrip("/")
            if not relative or key.endswith("/"):
                continue
            target = into / relative
            if ".." in Path(relative).parts:
                continue  # a key that would land outside the scratch folder
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, key, str(target))
            names[str(target)] = f"s3://{bucket}/{key}"
    return names


def upload(endpoint: str, folder: Path, uri: str) -> None:
    """Every file below ``folder`` to ``uri`` (its path below ``folder`` appended)."""
    bucket, prefix = split(uri, "outputS3Uri")
    s3 = client(endpoint)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        s3.upload_file(str(path), bucket, prefix + path.relative_to(folder).as_posix())


class LocalS3(MotoServer):
    """moto's S3 server in a thread, on loopback; ``start()`` returns its URL."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(
            host, port, needs=f"S3 beside the local HealthImaging needs moto: {INSTALL_HINT}"
        )

    def __enter__(self) -> LocalS3:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
