"""The account's HealthImaging quotas, where AWS Service Quotas publishes them.

One ``ListServiceQuotas(ServiceCode="medical-imaging")`` at the start of a session
(one attempt, short timeouts: it is a hint, not a dependency). Quotas are matched by
name: a quota that names an operation the pacer knows and says it is a *rate* (``Rate
of UpdateImageSetMetadata requests``, ``… transactions per second``) is that
operation's requests per second; one that says *burst* is its burst. Anything else
(``Maximum number of concurrent … requests per data store``, sizes, counts) is not a
rate and is left alone.

Whether AWS lists HealthImaging's throttling rates there is not documented (its
throttling page says to ask AWS Support for a change), so finding nothing is the
ordinary case: the pacer then starts from what it remembers or from the documented
defaults and discovers the rest. Every failure — no permission
(``servicequotas:ListServiceQuotas``), no such service, no route to the endpoint from
a private network — means "nothing published" and is logged at debug level, never
raised. ``serviceQuotas: false`` in reconciler.yaml skips the call.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from reconciler.config import Endpoint
from reconciler.errors import ReconcilerError
from reconciler.healthimaging.client import make_boto3_client
from reconciler.healthimaging.pacing import SERVICE_QUOTAS, WRITE_OPERATIONS, Quota, default_burst

log = logging.getLogger("reconciler.healthimaging")

SERVICE_CODE = "medical-imaging"
MAX_PAGES = 5  # 100 quotas a page: far more than the service has
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 5.0

_BURST = re.compile(r"\bburst\b", re.IGNORECASE)
_RATE = re.compile(r"\brate\b|\bper second\b|\btps\b|\btransactions per second\b", re.IGNORECASE)
_NOT_A_RATE = re.compile(r"\bconcurrent\b|\bmaximum number\b|\bsize\b", re.IGNORECASE)


def _operation(name: str) -> str | None:
    """The operation a quota's name is about (whole word: ``GetImageSet`` is not
    ``GetImageSetMetadata``), or None."""
    for operation in SERVICE_QUOTAS:
        if re.search(rf"\b{operation}\b", name):
            return operation
    return None


# Service Quotas' PeriodUnit values, in seconds: a rate is Value per PeriodValue units.
_PERIOD_SECONDS = {
    "MICROSECOND": 1e-6, "MILLISECOND": 1e-3, "SECOND": 1.0, "MINUTE": 60.0,
    "HOUR": 3600.0, "DAY": 86400.0, "WEEK": 604800.0,
}  # fmt: skip
MIN_RATE = 1e-3  # requests per second: anything slower is not a throttle the pacer uses
MAX_VALUE = 1e6


def _per_second(item: Mapping[str, Any], value: float) -> float | None:
    """``value`` per second, by the item's ``Period`` (none: per second, as the name
    says); None when the period is not one Service Quotas defines."""
    period = item.get("Period")
    if period is None:
        return value
    if not isinstance(period, Mapping):
        return None
    seconds = _PERIOD_SECONDS.get(str(period.get("PeriodUnit")))
    count = period.get("PeriodValue", 1)
    if seconds is None or isinstance(count, bool) or not isinstance(count, int) or count < 1:
        return None
    return value / (seconds * count)


def parse(quotas: Iterable[Any]) -> dict[str, Quota]:
    """Rates (and bursts, when listed) per operation from Service Quotas' ``Quotas``
    items; an operation whose rate is not listed is not in the result. A burst not
    listed is the documented shape's: 1 for writes, two seconds' worth for reads."""
    rates: dict[str, float] = {}
    bursts: dict[str, float] = {}
    for item in quotas:
        if not isinstance(item, Mapping):
            continue
        name, value = item.get("QuotaName"), item.get("Value")
        if not isinstance(name, str) or isinstance(value, bool):
            continue
        if not isinstance(value, (int, float)) or not 0 < value <= MAX_VALUE:
            continue
        operation = _operation(name)
        if operation is None or _NOT_A_RATE.search(name):
            continue
        if _BURST.search(name):
            bursts[operation] = float(value)
        elif _RATE.search(name):
            rate = _per_second(item, float(value))
            if rate is not None and rate >= MIN_RATE:
                rates[operation] = rate
    found = {}
    for op, rate in rates.items():
        shape = 1.0 if op in WRITE_OPERATIONS else default_burst(rate)
        found[op] = Quota(rate, max(1.0, bursts.get(op, shape)))
    return found


def read(endpoint: Endpoint, region: str | None, profile: str | None) -> dict[str, Quota]:
    """The quotas Service Quotas publishes for this account and region ({} when it
    publishes none, or cannot be asked). ``endpoint``: for ``local`` and ``url``
    endpoints the same URL is asked (the local HealthImaging answers for Service
    Quotas too); for ``aws`` the region's Service Quotas endpoint
    (``AWS_ENDPOINT_URL_SERVICE_QUOTAS`` overrides it, as in every AWS SDK)."""
    try:
        client = make_boto3_client(
            endpoint,
            region,
            profile,
            max_pool=1,
            max_attempts=1,
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            service="service-quotas",
        )
    except (ReconcilerError, ValueError) as failure:  # no region, a broken profile...
        log.debug("Service Quotas not asked: %s", failure)
        return {}
    items: list[Any] = []
    try:
        pages = client.get_paginator("list_service_quotas").paginate(ServiceCode=SERVICE_CODE)
        for page in itertools.islice(pages, MAX_PAGES):
            quotas = page.get("Quotas") if isinstance(page, Mapping) else None
            items.extend(quotas if isinstance(quotas, list) else [])
    # A hint, never a dependency: an answer botocore cannot parse (a body of the wrong
    # shape raises AttributeError or TypeError there, a hostile one RecursionError) is
    # "nothing published" like a refusal or a timeout.
    except (BotoCoreError, ClientError, AttributeError, TypeError, ValueError,
            RecursionError) as failure:  # fmt: skip
        log.debug("Service Quotas publishes nothing readable for %s: %s", SERVICE_CODE, failure)
        return {}
    finally:
        client.close()
    found = parse(items)
    if found:
        log.debug("Service Quotas publishes %s", {op: (q.rate, q.burst) for op, q in found.items()})
    return found
