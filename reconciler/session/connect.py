"""One call from settings to a ready client: the endpoint, pacing (at the quotas AWS
Service Quotas publishes for the account, if it does; started from the rates the last
run against the same account reached, and remembering this run's at the end) and, for
``local``, the embedded emulator's lifetime.

The rates are remembered in the project's state (``rates.json`` of the scope), through
:class:`RateMemory`: the session gives one, and a failure to read or write it is logged,
never raised (the next run only starts slower)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Protocol

from reconciler.config import Endpoint, ProjectConfig
from reconciler.healthimaging import memory, published
from reconciler.healthimaging.client import DEFAULT_MAX_ATTEMPTS, HealthImaging, make_boto3_client
from reconciler.healthimaging.pacing import RateLimiter

LOG = logging.getLogger("reconciler")


class RateMemory(Protocol):
    """Where the rates a run reached are remembered (the state's ``rates.json``)."""

    def load(self) -> Any: ...

    def save(self, document: Any) -> None: ...


@contextmanager
def connect(
    endpoint: Endpoint,
    config: ProjectConfig,
    *,
    region: str | None = None,
    profile: str | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    rates: RateMemory | None = None,
) -> Iterator[HealthImaging]:
    """A :class:`HealthImaging` for ``endpoint``, closed (and a local emulator stopped)
    on exit. ``region``/``profile`` (``--region``/``--profile``) win over the config's."""
    region = region or config.region
    profile = profile or config.profile
    # One connection per worker thread, plus a little room for the waiter's polls.
    pool = max(10, config.parallelism + 2)
    local = None
    scale = 1.0
    previous = rates.load() if rates is not None else None
    if endpoint.kind == "local":
        # Imported here: the emulator (and pydicom) load only when --local asks for them.
        from reconciler.session.local import LOCAL_QUOTA_SCALE, start_local

        local, url = start_local(config.local_db, import_root=config.root)
        endpoint = replace(endpoint, url=url)
        scale = LOCAL_QUOTA_SCALE
    try:
        boto_client = make_boto3_client(
            endpoint, region, profile, max_pool=pool, max_attempts=max_attempts
        )
        try:
            quotas = published.read(endpoint, region, profile) if config.service_quotas else {}
            limiter = RateLimiter.for_service(
                config.rate_limits,
                scale=scale,
                remembered=memory.starts(previous),
                published=quotas,
            )
            ahi = HealthImaging(boto_client, limiter=limiter)
            ahi.endpoint = endpoint
            try:
                yield ahi
            finally:
                document = memory.merged(previous, limiter.remembered(), endpoint.kind)
                if rates is not None and document is not None:
                    rates.save(document)
        finally:
            boto_client.close()
    finally:
        if local is not None:
            local.stop()
