"""One call from settings to a ready client: the endpoint, pacing (at the quotas AWS
Service Quotas publishes for the account, if it does; started from the rates the last
run against the same account reached, and remembering this run's at the end) and, for
``local``, the embedded emulator's lifetime."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from reconciler.config import Endpoint, ProjectConfig
from reconciler.healthimaging import memory, published
from reconciler.healthimaging.client import DEFAULT_MAX_ATTEMPTS, HealthImaging, make_boto3_client
from reconciler.healthimaging.pacing import RateLimiter

RATES_FOLDER = "rates"  # under the cache folder: one file per account scope


@contextmanager
def connect(
    endpoint: Endpoint,
    config: ProjectConfig,
    *,
    region: str | None = None,
    profile: str | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> Iterator[HealthImaging]:
    """A :class:`HealthImaging` for ``endpoint``, closed (and a local emulator stopped)
    on exit. ``region``/``profile`` (``--region``/``--profile``) win over the config's."""
    region = region or config.region
    profile = profile or config.profile
    # One connection per worker thread, plus a little room for the waiter's polls.
    pool = max(10, config.parallelism + 2)
    local = None
    scale = 1.0
    # The account scope of the remembered rates: the endpoint (the local service by its
    # database), the region and the profile (the account behind it).
    where = str(config.local_db) if endpoint.kind == "local" else endpoint.url
    scope = memory.scope_key(endpoint.kind, where, region, profile)
    rates_file = config.cache_dir / RATES_FOLDER / f"{scope}.json"
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
                remembered=memory.load(rates_file),
                published=quotas,
            )
            try:
                yield HealthImaging(boto_client, limiter=limiter)
            finally:
                memory.save(rates_file, limiter.remembered(), endpoint.kind)
        finally:
            boto_client.close()
    finally:
        if local is not None:
            local.stop()
