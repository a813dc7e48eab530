"""Who the credentials are (the principal a state lock and an audit record name, the
account that scopes state): STS GetCallerIdentity, asked of moto's STS on loopback
(AWS_ENDPOINT_URL_STS, as boto3 reads it); None where nothing answers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer

from reconciler.config import Endpoint
from reconciler.healthimaging.identity import caller_identity


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
    who = caller_identity(Endpoint("aws"), "us-east-1", None)
    assert who is not None
    assert who.arn.startswith("arn:aws:") and who.account == "123456789012"
    assert who.partition == "aws"


def test_no_answer_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    assert caller_identity(Endpoint("url", "http://127.0.0.1:9"), None, None) is None
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")  # nothing listens
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert caller_identity(Endpoint("aws"), "us-east-1", None) is None
