"""AWS Service Quotas, as far as it concerns HealthImaging: the quotas this server enforces.

A client that reads an account's quotas asks Service Quotas (``ListServiceQuotas`` /
``GetServiceQuota`` / ``ListAWSDefaultServiceQuotas`` with ``ServiceCode:
medical-imaging``; the awsJson1_1 protocol: ``POST /`` with ``X-Amz-Target:
ServiceQuotasV20190624.<Operation>``). This server answers those calls on its own port
with the rate and the burst of every operation's bucket, so a client can start at the
real quota instead of probing for it (reconciler's pacer does).

Whether AWS lists HealthImaging's throttling rates in Service Quotas is not documented
(its throttling page says to ask AWS Support for a change), so publishing can be turned
off (``EmulatorConfig.service_quotas``, ``emulator serve --no-service-quotas``): then
the service is listed with no quotas, like an account whose quotas cannot be read, and
a client has to find the rate on its own. With quotas off (``quotas_enabled``) nothing
is enforced, so nothing is listed either.

Names follow Service Quotas' usual wording for request rates: ``Rate of <Operation>
requests`` (requests per second) and ``Burst rate of <Operation> requests``. Codes are
``L-`` and eight hex digits derived from the name, stable from run to run.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from reconciler.emulator import paging, quota_profiles
from reconciler.emulator.config import RuntimeSettings
from reconciler.emulator.exceptions import ServiceError, ValidationException

TARGET_PREFIX = "ServiceQuotasV20190624."
SERVICE_CODE = "medical-imaging"
SERVICE_NAME = "AWS HealthImaging"
CONTENT_TYPE = "application/x-amz-json-1.1"
PAGE_SIZE = 100


class NoSuchResourceException(ServiceError):
    code, status = "NoSuchResourceException", 400


class IllegalArgumentException(ServiceError):
    code, status = "IllegalArgumentException", 400


def is_service_quotas(method: str, path: str, headers: dict[str, str]) -> bool:
    """Whether a request is a Service Quotas call (``headers`` with lower-case names)."""
    target = headers.get("x-amz-target", "")
    return method == "POST" and path == "/" and target.startswith(TARGET_PREFIX)


def code_of(name: str) -> str:
    return "L-" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:8].upper()


def _quota(name: str, value: float, region: str, *, applied: bool) -> dict[str, Any]:
    code = code_of(name)
    account = "123456789012" if applied else ""
    return {
        "ServiceCode": SERVICE_CODE,
        "ServiceName": SERVICE_NAME,
        "QuotaArn": f"arn:aws:servicequotas:{region}:{account}:{SERVICE_CODE}/{code}",
        "QuotaCode": code,
        "QuotaName": name,
        "Value": value,
        "Unit": "None",
        "Adjustable": True,
        "GlobalQuota": False,
    }


def quotas(settings: RuntimeSettings, region: str, *, applied: bool) -> list[dict[str, Any]]:
    """Two quotas per operation: its rate and its burst. ``applied``: what this server
    enforces (scaled, overrides on top); else the published profile's defaults."""
    config = settings.config
    if applied and not (config.quotas_enabled and config.service_quotas):
        return []
    table = settings.quotas() if applied else quota_profiles.profile(config.quota_profile)
    scale = config.quota_scale if applied else 1.0
    found = []
    for operation in sorted(table):
        rate, burst = table[operation]
        found.append(_quota(f"Rate of {operation} requests", rate * scale, region, applied=applied))
        found.append(
            _quota(
                f"Burst rate of {operation} requests",
                float(max(1.0, burst * scale)),
                region,
                applied=applied,
            )
        )
    return found


def _service_code(params: dict[str, Any]) -> None:
    code = params.get("ServiceCode")
    if not isinstance(code, str) or not code:
        raise ValidationException("ServiceCode is required")
    if code != SERVICE_CODE:
        raise NoSuchResourceException(
            "The request failed because the specified service does not exist."
        )


def _page(items: list[dict[str, Any]], params: dict[str, Any], listing: str) -> dict[str, Any]:
    """One page of ``items`` in Service Quotas' members (``MaxResults``, ``NextToken``),
    through the emulator's one pagination (:func:`paging.page`: opaque tokens bound to
    their listing)."""
    size = params.get("MaxResults", PAGE_SIZE)
    token = params.get("NextToken")
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= PAGE_SIZE:
        raise ValidationException(f"MaxResults must be an integer from 1 to {PAGE_SIZE}")
    if token is not None and not isinstance(token, str):
        raise IllegalArgumentException("Invalid NextToken")
    try:
        chosen, next_token = paging.page(items, {"maxResults": size, "nextToken": token},
                                         default_size=PAGE_SIZE, context=listing)  # fmt: skip
    except ValidationException:
        raise IllegalArgumentException("Invalid NextToken") from None
    result: dict[str, Any] = {"Quotas": chosen}
    if next_token is not None:
        result["NextToken"] = next_token
    return result


def handle(settings: RuntimeSettings, target: str, body: bytes, region: str) -> dict[str, Any]:
    """The answer to one Service Quotas call, or a :class:`ServiceError`."""
    operation = target[len(TARGET_PREFIX) :]
    try:
        params = json.loads(body or b"{}")
    except (ValueError, RecursionError):
        raise ValidationException("the request body is not JSON") from None
    if not isinstance(params, dict):
        raise ValidationException("the request body must be a JSON object")
    if operation in ("ListServiceQuotas", "ListAWSDefaultServiceQuotas"):
        _service_code(params)
        applied = operation == "ListServiceQuotas"
        return _page(quotas(settings, region, applied=applied), params, operation)
    if operation in ("GetServiceQuota", "GetAWSDefaultServiceQuota"):
        _service_code(params)
        applied = operation == "GetServiceQuota"
        code = params.get("QuotaCode")
        if not isinstance(code, str) or not code:
            raise ValidationException("QuotaCode is required")
        for quota in quotas(settings, region, applied=applied):
            if quota["QuotaCode"] == code:
                return {"Quota": quota}
        raise NoSuchResourceException(f"The quota {code} does not exist for {SERVICE_CODE}.")
    raise IllegalArgumentException(f"Service Quotas operation {operation!r} is not served here")
