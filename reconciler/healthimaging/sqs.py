"""The SQS queue HealthImaging's EventBridge events are routed to: the consumer side.

On AWS an EventBridge rule (``source: aws.medical-imaging``) with an SQS target puts
each event, whole, as the body of one message; ``drift --watch`` reads them here.
Long polling (up to :data:`LONG_POLL` seconds, at most :data:`MAX_MESSAGES` a call),
and a message is deleted only after what it announced was checked and notified, so a
crash leaves it to be delivered again once its visibility timeout runs out.

``sqs://HOST/ACCOUNT/NAME`` is read as ``https://HOST/ACCOUNT/NAME`` (``http`` for a
loopback host: the local HealthImaging's queue); an ``http(s)`` queue URL is taken as
it is. Queues on AWS are reached in the region their host names; any other host is
an endpoint of its own (the credential chain, else the local keys, as for
HealthImaging's custom endpoints).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from reconciler.errors import ReconcilerError
from reconciler.healthimaging.client import (
    CUSTOM_ENDPOINT_REGION,
    LOCAL_ACCESS_KEY,
    LOCAL_SECRET_KEY,
    region_from_environment,
)
from reconciler.version import __version__

MAX_MESSAGES = 10  # ReceiveMessage's and the batch calls' limit
LONG_POLL = 20  # seconds: SQS's longest wait for a message
MAX_VISIBILITY = 12 * 3600  # SQS's longest visibility timeout
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# sqs.REGION.amazonaws.com, REGION.queue.amazonaws.com, queue.amazonaws.com (.cn in China)
_AWS_HOST = re.compile(
    r"^(?:sqs\.(?P<a>[a-z0-9-]+)|(?P<b>[a-z0-9-]+)\.queue|queue)\.amazonaws\.com(?:\.cn)?$"
)
# Failures worth waiting out (the queue is there, the network or SQS is not, for now).
_PASSING = {"ServiceUnavailable", "InternalError", "RequestThrottled", "ThrottlingException",
            "KmsThrottled", "OverLimit"}  # fmt: skip


class QueueError(ReconcilerError):
    """The queue refused a call: a wrong URL, missing permissions."""


class QueueUnavailable(QueueError):
    """The queue could not be reached, or asked to slow down: worth trying again."""


def queue_url(given: str) -> str:
    """The queue URL ``given`` names (``sqs://…`` or ``http(s)://…``); else one line."""
    parts = urlsplit(given.strip())
    segments = [s for s in parts.path.split("/") if s]
    if parts.scheme not in ("sqs", "http", "https") or not parts.hostname or len(segments) != 2:
        raise QueueError(
            f"--watch needs an SQS queue URL (sqs://HOST/ACCOUNT/QUEUE or "
            f"https://HOST/ACCOUNT/QUEUE), not {given[:120]!r}"
        )
    scheme = parts.scheme
    if scheme == "sqs":
        scheme = "http" if parts.hostname in _LOOPBACK else "https"
    return f"{scheme}://{parts.netloc}/{segments[0]}/{segments[1]}"


@dataclass(frozen=True)
class Message:
    message_id: str
    receipt: str  # the receipt handle: what deleting or keeping the message takes
    body: str
    receives: int  # how many times SQS has handed it out (1 the first time)


def _client(url: str, region: str | None, profile: str | None) -> Any:
    parts = urlsplit(url)
    config = Config(
        retries={"mode": "standard", "max_attempts": 4},
        connect_timeout=5,
        read_timeout=LONG_POLL + 20,  # a long poll answers within LONG_POLL seconds
        user_agent_extra=f"reconciler/{__version__}",
    )
    session = boto3.session.Session(profile_name=profile)
    aws = _AWS_HOST.match(parts.hostname or "")
    if aws:
        named = aws.group("a") or aws.group("b")
        region = named or region or region_from_environment() or session.region_name
        return session.client("sqs", region_name=region, config=config)
    keys: dict[str, str] = {}
    if session.get_credentials() is None:
        keys = {"aws_access_key_id": LOCAL_ACCESS_KEY, "aws_secret_access_key": LOCAL_SECRET_KEY}
    return session.client(
        "sqs",
        endpoint_url=f"{parts.scheme}://{parts.netloc}",
        region_name=region or region_from_environment() or CUSTOM_ENDPOINT_REGION,
        config=config,
        **keys,
    )


class EventQueue:
    """One SQS queue: receive (long polling), delete, keep (extend the visibility)."""

    def __init__(self, url: str, *, region: str | None = None, profile: str | None = None) -> None:
        self.url = queue_url(url)
        try:
            self._sqs = _client(self.url, region, profile)
        except BotoCoreError as failure:  # a profile that does not exist, no region
            raise QueueError(f"SQS queue {self.url}: {failure}") from None

    def close(self) -> None:
        self._sqs.close()

    def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._sqs, operation)(QueueUrl=self.url, **kwargs)
        except ClientError as failure:
            error = failure.response.get("Error", {})
            code = str(error.get("Code", ""))
            text = " ".join(str(error.get("Message", "")).split())[:200]
            kind = QueueUnavailable if code in _PASSING or code.startswith("5") else QueueError
            raise kind(f"SQS {_name(operation)} on {self.url}: {code} ({text})") from None
        except EndpointConnectionError:
            raise QueueUnavailable(f"SQS {_name(operation)}: cannot reach {self.url}") from None
        except BotoCoreError as failure:
            raise QueueUnavailable(f"SQS {_name(operation)} on {self.url}: {failure}") from None

    def visibility_timeout(self) -> int:
        """The queue's own visibility timeout (seconds); also proves it is there and
        readable (GetQueueAttributes)."""
        answer = self._call("get_queue_attributes", AttributeNames=["VisibilityTimeout"])
        return int(answer.get("Attributes", {}).get("VisibilityTimeout", 30))

    def receive(self, *, wait: int, visibility: int, limit: int = MAX_MESSAGES) -> list[Message]:
        """Up to ``limit`` messages, waiting up to ``wait`` seconds for the first; each
        stays invisible to other receivers for ``visibility`` seconds."""
        answer = self._call(
            "receive_message",
            MaxNumberOfMessages=max(1, min(limit, MAX_MESSAGES)),
            WaitTimeSeconds=max(0, min(wait, LONG_POLL)),
            VisibilityTimeout=max(0, min(visibility, MAX_VISIBILITY)),
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        return [
            Message(
                message_id=str(item["MessageId"]),
                receipt=str(item["ReceiptHandle"]),
                body=str(item.get("Body", "")),
                receives=int((item.get("Attributes") or {}).get("ApproximateReceiveCount", 1)),
            )
            for item in answer.get("Messages", [])
        ]

    def delete(self, messages: Sequence[Message]) -> int:
        """Delete ``messages``; how many SQS did not delete (a receipt that expired:
        the message comes back and is checked again, which notifies nothing twice)."""
        return self._batch("delete_message_batch", messages, {})

    def keep(self, messages: Sequence[Message], visibility: int) -> int:
        """Keep ``messages`` invisible ``visibility`` seconds more (a batch that takes
        longer than planned); how many SQS did not extend."""
        timeout = max(0, min(visibility, MAX_VISIBILITY))
        return self._batch("change_message_visibility_batch", messages,
                           {"VisibilityTimeout": timeout})  # fmt: skip

    def _batch(self, operation: str, messages: Sequence[Message], extra: dict[str, Any]) -> int:
        failed = 0
        for start in range(0, len(messages), MAX_MESSAGES):
            chunk = messages[start : start + MAX_MESSAGES]
            entries = [
                {"Id": str(n), "ReceiptHandle": m.receipt, **extra} for n, m in enumerate(chunk)
            ]
            answer = self._call(operation, Entries=entries)
            failed += len(answer.get("Failed") or [])
        return failed


def _name(operation: str) -> str:
    """``receive_message`` → ``ReceiveMessage``."""
    return "".join(word.capitalize() for word in operation.split("_"))
