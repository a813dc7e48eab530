"""The local HealthImaging answers AWS Service Quotas for medical-imaging with the quotas
it enforces, judged by the AWS CLI (an independent client) and by its own buckets."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import aws_cli as run_aws_cli
from conftest import make_client

from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.server import LocalHealthImaging

UPDATE = "UpdateImageSetMetadata"


def aws_cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_aws_cli(url, "service-quotas", *args, region="eu-west-1")


def by_name(quotas: list[dict[str, Any]]) -> dict[str, float]:
    return {quota["QuotaName"]: quota["Value"] for quota in quotas}


def quotas_client(url: str) -> Any:
    return boto3.client("service-quotas", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="y")  # fmt: skip


def test_the_aws_cli_lists_the_quotas_the_server_enforces(tmp_path: Path) -> None:
    config = EmulatorConfig(db_path=tmp_path / "db.sqlite", quota_profile="fast-updates",
                            quota_overrides={"GetImageSet": (30.0, 60)})  # fmt: skip
    with LocalHealthImaging(config) as local:
        result = aws_cli(local.url, "list-service-quotas", "--service-code", "medical-imaging")
        assert result.returncode == 0, result.stderr
        quotas = json.loads(result.stdout)["Quotas"]
        listed = by_name(quotas)
        assert listed[f"Rate of {UPDATE} requests"] == 10.0
        assert listed[f"Burst rate of {UPDATE} requests"] == 40.0
        assert listed["Rate of GetImageSet requests"] == 30.0  # the override, not the profile
        assert all(q["QuotaArn"].startswith("arn:aws:servicequotas:eu-west-1:") for q in quotas)
        # One quota by its code; the defaults are the profile's, before overrides.
        code = next(q["QuotaCode"] for q in quotas if q["QuotaName"].startswith("Rate of Get"))
        one = aws_cli(local.url, "get-service-quota", "--service-code", "medical-imaging",
                      "--quota-code", code)  # fmt: skip
        assert json.loads(one.stdout)["Quota"]["QuotaCode"] == code
        defaults = aws_cli(local.url, "list-aws-default-service-quotas", "--service-code",
                           "medical-imaging")  # fmt: skip
        assert by_name(json.loads(defaults.stdout)["Quotas"])["Rate of GetImageSet requests"] == 25
        # Another service is not served: the error Service Quotas gives, exit code 254.
        other = aws_cli(local.url, "list-service-quotas", "--service-code", "ec2")
        assert other.returncode != 0 and "NoSuchResourceException" in other.stderr


def test_what_it_lists_is_what_throttles(tmp_path: Path) -> None:
    """The listed burst is exactly how many calls pass at once (scaled like the rest).
    The rate is tiny, so a loaded machine cannot refill a token during the burst."""
    config = EmulatorConfig(db_path=tmp_path / "db.sqlite", quota_scale=3.0,
                            quota_overrides={"ListDatastores": (0.005, 10)})  # fmt: skip
    with LocalHealthImaging(config) as local:
        listed = by_name(quotas_client(local.url).list_service_quotas(
            ServiceCode="medical-imaging")["Quotas"])  # fmt: skip
        burst = int(listed["Burst rate of ListDatastores requests"])
        assert (burst, listed["Rate of ListDatastores requests"]) == (30, 0.015)  # × 3
        client = make_client(local.url)
        for _ in range(burst):
            client.list_datastores()
        with pytest.raises(client.exceptions.ThrottlingException):
            client.list_datastores()


def test_publishing_can_be_turned_off_and_nothing_is_listed_without_quotas(
    tmp_path: Path,
) -> None:
    with LocalHealthImaging(EmulatorConfig(db_path=tmp_path / "db.sqlite")) as local:
        client = quotas_client(local.url)
        assert client.list_service_quotas(ServiceCode="medical-imaging")["Quotas"]
        local.configure(service_quotas=False)  # an account whose quotas cannot be read
        assert client.list_service_quotas(ServiceCode="medical-imaging")["Quotas"] == []
        local.configure(service_quotas=True, quotas_enabled=False)  # nothing enforced
        assert client.list_service_quotas(ServiceCode="medical-imaging")["Quotas"] == []
        page = client.list_aws_default_service_quotas(ServiceCode="medical-imaging", MaxResults=4)
        assert len(page["Quotas"]) == 4 and page["NextToken"]


def test_unsigned_service_quotas_calls_are_refused(tmp_path: Path) -> None:
    with LocalHealthImaging(EmulatorConfig(db_path=tmp_path / "db.sqlite")) as local:
        request = urllib.request.Request(
            local.url + "/", data=b'{"ServiceCode": "medical-imaging"}', method="POST",
            headers={"X-Amz-Target": "ServiceQuotasV20190624.ListServiceQuotas",
                     "Content-Type": "application/x-amz-json-1.1"},
        )  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 403


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"ServiceCode": "medical-imaging", "NextToken": "\xc2\xb2"}', "IllegalArgument"),
        (b'{"ServiceCode": "medical-imaging", "NextToken": "' + b"9" * 5000 + b'"}',
         "IllegalArgument"),
        (b'{"ServiceCode": "medical-imaging", "NextToken": "999"}', "IllegalArgument"),
        (b"[" * 200_000, "ValidationException"),
        (b"[1, 2]", "ValidationException"),
        (b'{"ServiceCode": "medical-imaging", "MaxResults": 10000}', "ValidationException"),
    ],
)  # fmt: skip
def test_hostile_bodies_get_one_line_errors(tmp_path: Path, body: bytes, error: str) -> None:
    """Signed, well-routed, hostile: always an awsJson error answer, never a dropped
    connection or a server traceback."""
    from reconciler.emulator.signatures import sign

    with LocalHealthImaging(EmulatorConfig(db_path=tmp_path / "db.sqlite")) as local:
        headers = {**sign("POST", local.url + "/", body),
                   "X-Amz-Target": "ServiceQuotasV20190624.ListServiceQuotas",
                   "Content-Type": "application/x-amz-json-1.1"}  # fmt: skip
        request = urllib.request.Request(local.url + "/", data=body, method="POST",
                                         headers=headers)  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 400
        assert error in json.loads(refused.value.read())["__type"]
