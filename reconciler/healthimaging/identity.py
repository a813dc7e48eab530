"""Who the credentials are: AWS STS ``GetCallerIdentity`` (which needs no permission).

The principal's ARN names the holder of a state lock and the author of audit records;
its account scopes state (state of one account never serves another, whatever the
profile is called). The local HealthImaging answers the same call for its own
principal.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from reconciler.config import Endpoint
from reconciler.healthimaging.client import make_boto3_client
from reconciler.healthimaging.errors import ServiceError

log = logging.getLogger("reconciler.healthimaging")


@dataclass(frozen=True)
class Identity:
    account: str
    arn: str

    @property
    def partition(self) -> str:
        parts = self.arn.split(":")
        return parts[1] if len(parts) > 1 and parts[1] else "aws"


def caller_identity(endpoint: Endpoint, region: str | None, profile: str | None) -> Identity | None:
    """Who the credentials for ``endpoint`` are; None when STS cannot say (no
    credentials, no route): the caller decides whether that matters."""
    try:
        sts = make_boto3_client(
            endpoint,
            region,
            profile,
            max_attempts=1,
            connect_timeout=3.0,
            read_timeout=10.0,
            service="sts",
        )
        try:
            answer = sts.get_caller_identity()
        finally:
            sts.close()
    except (BotoCoreError, ClientError, ResponseParserError, ServiceError, ValueError) as failure:
        log.debug("STS GetCallerIdentity failed: %s", failure)
        return None
    account, arn = answer.get("Account"), answer.get("Arn")
    if not isinstance(account, str) or not isinstance(arn, str):
        return None
    return Identity(account, arn)
