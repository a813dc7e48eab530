"""Service and connection failures become the project's errors: one line, no secrets."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError, NoCredentialsError
from conftest import USDOPPLER, blob, put_document

from reconciler.config import Endpoint
from reconciler.emulator.server import LocalHealthImaging
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.healthimaging import (
    AccessDenied,
    CredentialsMissing,
    DatastoreNotFound,
    EndpointUnreachable,
    HealthImaging,
    ImageSetNotFound,
    PayloadTooLarge,
    RateLimiter,
    ServiceError,
    ServiceUnavailable,
    ServiceValidationError,
    Throttled,
    VersionConflict,
    make_boto3_client,
    map_error,
)
from reconciler.healthimaging.client import MAX_THROTTLED_ATTEMPTS

ISID = "a" * 32
MISSING = "f" * 32
ACCESS_KEY = "AKIAEXAMPLEKEY123456"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzSECRETVALUE"


@pytest.fixture
def secret_env(no_aws_config: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)


def connect(url: str, attempts: int = 1, kind: str = "local") -> HealthImaging:
    boto = make_boto3_client(Endpoint(kind, url), max_attempts=attempts)  # type: ignore[arg-type]
    return HealthImaging(boto, limiter=RateLimiter.unlimited())


@pytest.fixture
def hi(local: LocalHealthImaging) -> HealthImaging:
    return connect(local.url)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nothing listens here now: connections are refused at once


def describe(text: str) -> bytes:
    return blob({"Study": {"DICOM": {"StudyDescription": text}}})


def one_line(error: ReconcilerError) -> str:
    text = str(error)
    assert "\n" not in text and len(text) < 600
    return text


def test_missing_image_set_and_data_store(datastore: str, hi: HealthImaging) -> None:
    with pytest.raises(ImageSetNotFound) as caught:
        hi.get_image_set(datastore, MISSING)
    text = one_line(caught.value)
    assert text.startswith(f"GetImageSet of image set {MISSING}: not found")
    assert (caught.value.code, caught.value.operation) == (
        "ResourceNotFoundException",
        "GetImageSet",
    )
    with pytest.raises(DatastoreNotFound, match="check datastoreId"):
        list(hi.search(MISSING))
    with pytest.raises(DatastoreNotFound):
        hi.get_image_set(MISSING, ISID)


def test_stale_version_and_locked_image_set_are_conflicts(
    local: LocalHealthImaging, datastore: str, hi: HealthImaging
) -> None:
    put_document(local, datastore, USDOPPLER, ISID)
    with pytest.raises(
        VersionConflict, match=f"UpdateImageSetMetadata of image set {ISID}: conflict"
    ):
        hi.update_metadata(datastore, ISID, "7", updatable=describe("X"), removable=None)
    local.configure(lock_hold_seconds=30)
    hi.update_metadata(datastore, ISID, "1", updatable=describe("X"), removable=None)
    with pytest.raises(VersionConflict, match="locked"):
        hi.revert(datastore, ISID, "2", to_version="1")


def test_rejections_and_quota(local: LocalHealthImaging, datastore: str, hi: HealthImaging) -> None:
    put_document(local, datastore, USDOPPLER, ISID)
    wrong_level = blob({"Study": {"DICOM": {"PatientName": "X^Y"}}})
    with pytest.raises(ServiceValidationError, match="rejected: "):
        hi.update_metadata(datastore, ISID, "1", updatable=wrong_level, removable=None)
    with pytest.raises(PayloadTooLarge, match="split the update"):
        hi.update_metadata(datastore, ISID, "1", updatable=describe("x" * 12_000), removable=None)
    with pytest.raises(ServiceValidationError, match="invalid request: Parameter validation"):
        hi._call("GetImageSet", None, datastoreId=datastore)  # botocore's own check


def test_read_only_is_access_denied(
    local: LocalHealthImaging, datastore: str, hi: HealthImaging
) -> None:
    put_document(local, datastore, USDOPPLER, ISID)
    local.configure(read_only=True)
    with pytest.raises(AccessDenied, match="access denied") as caught:
        hi.update_metadata(datastore, ISID, "1", updatable=describe("X"), removable=None)
    assert caught.value.code == "AccessDeniedException"


def test_server_errors_are_retried_then_service_unavailable(
    local: LocalHealthImaging, datastore: str
) -> None:
    put_document(local, datastore, USDOPPLER, ISID)
    hi = connect(local.url, attempts=2)
    sent: list[str] = []
    hi._boto.meta.events.register("before-send.medical-imaging", lambda **_: sent.append("x"))
    local.configure(faults={"operations": {"GetImageSet": {"error_rate": 1.0}}})
    with pytest.raises(ServiceUnavailable, match="failed after 2 attempts") as caught:
        hi.get_image_set(datastore, ISID)
    assert len(sent) == 2
    assert caught.value.code == "InternalServerException"


def test_throttling_is_retried_until_a_bound_then_says_what_is_going_on(
    local: LocalHealthImaging, datastore: str
) -> None:
    """A 429 is the pacer's business, retried far more often than a failure (a pacer
    that backs off gets through); a service that never stops throttling still ends."""
    waits: list[float] = []
    hi = HealthImaging(make_boto3_client(Endpoint("local", local.url), max_attempts=1),
                       limiter=RateLimiter.unlimited(), sleep=waits.append)  # fmt: skip
    sent: list[str] = []
    hi._boto.meta.events.register("before-send.medical-imaging", lambda **_: sent.append("x"))
    local.configure(
        faults={"operations": {"GetImageSet": {"error_rate": 1.0, "error_status": 429}}}
    )
    with pytest.raises(Throttled) as caught:
        hi.get_image_set(datastore, ISID)
    assert len(sent) == MAX_THROTTLED_ATTEMPTS  # one botocore attempt each: ours retry
    assert len(waits) == MAX_THROTTLED_ATTEMPTS - 1
    message = str(caught.value)
    assert f"still throttled after {MAX_THROTTLED_ATTEMPTS} attempts" in message
    assert "another run or tool" in message and "rateLimits" in message


def test_an_unreachable_endpoint_fails_fast() -> None:
    """Fast means few attempts and short waits between them (counted, not timed: the
    benchmarks time things)."""
    url = f"http://127.0.0.1:{closed_port()}"
    waits: list[float] = []
    boto = make_boto3_client(Endpoint("local", url), max_attempts=2)
    hi = HealthImaging(boto, limiter=RateLimiter.unlimited(), sleep=waits.append)
    with pytest.raises(EndpointUnreachable) as caught:
        hi.get_image_set(MISSING, ISID)
    assert hi.calls["GetImageSet"] == 2  # the attempts asked for, no more
    assert len(waits) == 1 and sum(waits) < 5
    assert url in one_line(caught.value) and "RECONCILER_ENDPOINT" in str(caught.value)


def test_no_credentials_says_how_to_configure_or_use_local(no_aws_config: None) -> None:
    hi = HealthImaging(make_boto3_client(Endpoint("aws"), region="us-east-1", max_attempts=1),
                       limiter=RateLimiter.unlimited())  # fmt: skip
    with pytest.raises(CredentialsMissing) as caught:  # raised while signing: nothing is sent
        hi.get_image_set(MISSING, ISID)
    assert "--local" in one_line(caught.value) and "aws configure" in str(caught.value)


def test_setup_problems_are_config_errors(no_aws_config: None) -> None:
    with pytest.raises(ConfigError, match="no AWS region"):
        make_boto3_client(Endpoint("aws"))
    with pytest.raises(ConfigError, match="profile"):
        make_boto3_client(Endpoint("aws"), region="us-east-1", profile="nobody")


def test_no_secret_reaches_an_error_message(
    secret_env: None, local: LocalHealthImaging, datastore: str
) -> None:
    # A custom URL endpoint uses the credential chain: the secrets above are in use.
    hi = connect(local.url, kind="url")
    assert hi._boto._request_signer._credentials.secret_key == SECRET_KEY
    put_document(local, datastore, USDOPPLER, ISID)
    failures: list[Callable[[], Any]] = [
        lambda: hi.get_image_set(datastore, MISSING),
        lambda: hi.update_metadata(datastore, ISID, "9", updatable=describe("X"), removable=None),
        lambda: list(hi.search(MISSING)),
        lambda: connect(f"http://127.0.0.1:{closed_port()}", kind="url").get_image_set(
            datastore, ISID
        ),
    ]
    messages = []
    for fail in failures:
        with pytest.raises(ServiceError) as caught:
            fail()
        messages.append(str(caught.value))
    local.configure(read_only=True, faults={"operations": {"GetImageSet": {"error_rate": 1.0}}})
    for fail in (
        lambda: hi.revert(datastore, ISID, "1", "1"),
        lambda: hi.get_image_set(datastore, ISID),
    ):
        with pytest.raises(ServiceError) as caught:
            fail()
        messages.append(str(caught.value))
    assert len(messages) == 6
    for message in messages:
        assert SECRET_KEY not in message and ACCESS_KEY not in message


def client_error(code: str, message: str, status: int, retries: int = 0) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message},
         "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": retries}},
        "GetImageSet",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ResourceNotFoundException", 404, ImageSetNotFound),
        ("ConflictException", 409, VersionConflict),
        ("ValidationException", 400, ServiceValidationError),
        ("ServiceQuotaExceededException", 402, PayloadTooLarge),
        ("AccessDeniedException", 403, AccessDenied),
        ("ExpiredTokenException", 400, AccessDenied),
        ("UnrecognizedClientException", 403, AccessDenied),
        ("ThrottlingException", 429, Throttled),
        ("InternalServerException", 500, ServiceUnavailable),
        ("ServiceUnavailable", 503, ServiceUnavailable),
        ("SomethingNew", 418, ServiceError),
    ],
)
def test_map_error_by_code(code: str, status: int, expected: type[ServiceError]) -> None:
    error = map_error(client_error(code, "it went wrong", status, retries=2), "GetImageSet", ISID)
    assert type(error) is expected
    assert isinstance(error, ServiceError) and error.code == code
    assert str(error).startswith(f"GetImageSet of image set {ISID}: ")
    if expected in (Throttled, ServiceUnavailable):
        assert "after 3 attempts" in str(error)


def test_map_error_scrubs_credentials_the_service_might_echo() -> None:
    echoed = (f"bad request Credential={ACCESS_KEY}/20260101/us-east-1/medical-imaging/aws4_request, "
              f"Signature=abcdef0123 aws_secret_access_key={SECRET_KEY}\nsecond line")  # fmt: skip
    error = map_error(client_error("ValidationException", echoed, 400), "GetImageSet", ISID)
    text = one_line(error)
    assert ACCESS_KEY not in text and SECRET_KEY not in text and "abcdef0123" not in text
    assert "second line" in text
    missing = map_error(NoCredentialsError(), "SearchImageSets")
    assert isinstance(missing, CredentialsMissing) and str(missing).startswith("SearchImageSets: ")


TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD" + "c2Vzc2lvbg" * 30 + "=="


@pytest.mark.parametrize(
    "echoed",
    [
        f"x-amz-security-token: {TOKEN}",
        f"X-Amz-Security-Token:{TOKEN}",
        f"https://h/?X-Amz-Security-Token={TOKEN.replace('/', '%2F')}&X-Amz-Date=1",
        f"SessionToken='{TOKEN}'",
        f"aws_session_token = {TOKEN}",
        f"the token {TOKEN} expired",
        f"{TOKEN.replace('/', '%2F').replace('=', '%3D')}",
    ],
)
def test_a_session_token_is_redacted_in_any_form(echoed: str) -> None:
    error = map_error(client_error("ExpiredTokenException", echoed, 403), "GetImageSet", ISID)
    assert TOKEN[:40] not in str(error) and TOKEN[-60:] not in str(error), str(error)
    assert TOKEN[:40].replace("/", "%2F") not in str(error)


def test_service_messages_are_masked_like_update_failed_messages() -> None:
    echoed = "Invalid value 'DOE^JANE' for PatientName; PatientBirthDate: 19700131, series 1.2.3"
    error = map_error(client_error("ValidationException", echoed, 400), "UpdateImageSetMetadata")
    assert str(error) == (
        "UpdateImageSetMetadata: rejected: Invalid value *** for PatientName; "
        "PatientBirthDate: ***, series 1.2.3"
    )
