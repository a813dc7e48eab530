"""STS GetCallerIdentity on the local HealthImaging's port, judged by bare boto3 and the
AWS CLI: a principal of the account every ARN here carries."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from conftest import USDOPPLER, aws_cli, put_document, raw_request


def sts_client(url: str, key: str = "AKIDLOCAL") -> Any:
    return boto3.client(
        "sts",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key="s",
    )


def test_boto3_gets_a_principal_of_the_emulators_account(
    local: Any, client: Any, datastore: str
) -> None:
    put_document(local, datastore, USDOPPLER, "c" * 32)
    arn = client.get_image_set(datastoreId=datastore, imageSetId="c" * 32)["imageSetArn"]
    account = arn.split(":")[4]
    identity = sts_client(local.url).get_caller_identity()
    assert identity["Account"] == account
    assert identity["Arn"] == f"arn:aws:iam::{account}:user/AKIDLOCAL"
    assert identity["UserId"].startswith("AIDA") and len(identity["UserId"]) == 21
    # Another key is another principal of the same account; the same key, the same one.
    other = sts_client(local.url, "AKIDOTHER").get_caller_identity()
    assert other["Account"] == account and other["Arn"] != identity["Arn"]
    assert sts_client(local.url).get_caller_identity()["UserId"] == identity["UserId"]


def test_the_aws_cli_gets_the_caller_identity(local: Any) -> None:
    result = aws_cli(local.url, "sts", "get-caller-identity", key="AKIDCLI", region="eu-west-1")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["Arn"] == "arn:aws:iam::123456789012:user/AKIDCLI"


def test_unsigned_and_unknown_sts_calls_are_refused_in_sts_terms(local: Any) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    status, headers, body = raw_request(
        local.url,
        "POST",
        "/",
        b"Action=GetCallerIdentity&Version=2011-06-15",
        {**form, "Authorization": ""},
    )
    assert status == 403 and b"<Code>AccessDeniedException</Code>" in body
    assert headers["content-type"] == "text/xml"
    with pytest.raises(ClientError) as refused:
        sts_client(local.url).assume_role(
            RoleArn="arn:aws:iam::123456789012:role/r" + "x" * 20, RoleSessionName="session"
        )
    assert refused.value.response["Error"]["Code"] == "InvalidAction"
