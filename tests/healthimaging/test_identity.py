"""The principal ARN an audit record names: STS GetCallerIdentity, asked of moto's STS
on loopback (AWS_ENDPOINT_URL_STS, as boto3 reads it); "unknown" where there is no STS."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer

from reconciler.config import Endpoint
from reconciler.healthimaging.identity import UNKNOWN, caller_arn


@pytest.fixture
def sts(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    try:
        yield url
    finally:
        server.stop()


def test_the_principal_is_the_callers_arn(sts: str) -> None:
    arn = caller_arn(Endpoint("aws"), "us-east-1", None)
    assert arn.startswith("arn:aws:") and ":123456789012:" in arn


def test_no_sts_no_credentials_or_no_answer_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    assert caller_arn(Endpoint("local", "http://127.0.0.1:1"), None, None) == UNKNOWN
    assert caller_arn(Endpoint("url", "http://127.0.0.1:1"), None, None) == UNKNOWN
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")  # nothing listens
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert caller_arn(Endpoint("aws"), "us-east-1", None) == UNKNOWN
