"""The SQS queue beside the local HealthImaging that its EventBridge events land in.

On AWS, HealthImaging sends its events to EventBridge and a rule with an SQS target
puts each one, whole, as the body of a message in a queue (AWS's metadata-index sample
does exactly that). Locally, ``reconciler emulator serve --events`` starts moto's SQS
(``pip install 'healthimaging-reconciler[events]'``) on a loopback port, creates the standard queue
:data:`QUEUE_NAME` and prints its URL as ``Events (SQS) on QUEUE_URL``; the local
HealthImaging sends every event there (``EmulatorConfig.events_queue_url``). Any SQS
client reads them with only the endpoint changed. Like SQS's standard queues, the
queue does not promise order; this one delivers in the order the events were made.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

from reconciler.emulator import choices
from reconciler.emulator.moto_server import MotoServer

INSTALL_HINT = "pip install 'healthimaging-reconciler[events]'"
QUEUE_NAME = "local-healthimaging-events"


def client(queue_url: str) -> Any:
    """A boto3 SQS client of the server that holds ``queue_url``."""
    parts = urlsplit(queue_url)
    return boto3.client(
        "sqs",
        endpoint_url=f"{parts.scheme}://{parts.netloc}",
        region_name=choices.DEFAULT_REGION,
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"mode": "standard"}),
    )


class LocalEventQueue(MotoServer):
    """moto's SQS in a thread, on loopback, holding the events queue; ``start()``
    returns the server's URL and sets :attr:`queue_url`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(
            host, port, needs=f"Events beside the local HealthImaging need moto: {INSTALL_HINT}"
        )
        self.queue_url = ""

    def start(self) -> str:
        url = super().start()
        self.queue_url = client(f"{url}/").create_queue(QueueName=QUEUE_NAME)["QueueUrl"]
        return url

    def __enter__(self) -> LocalEventQueue:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
