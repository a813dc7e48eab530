"""The embedded local HealthImaging, connect(), and how the boto3 client is set up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.config import Endpoint, ProjectConfig
from reconciler.emulator import seed as seed_module
from reconciler.emulator.backend import Backend
from reconciler.emulator.seed import SEED_DATASTORE_ID, SeedResult
from reconciler.healthimaging import EndpointUnreachable, make_boto3_client
from reconciler.healthimaging.client import LOCAL_ACCESS_KEY, HealthImaging
from reconciler.healthimaging.pacing import RateLimiter, paced
from reconciler.session.connect import connect
from reconciler.session.local import LOCAL_QUOTA_SCALE, start_local


def credentials(boto: Any) -> Any:
    return boto._request_signer._credentials


def snapshot(url: str) -> list[tuple[str, str]]:
    hi = HealthImaging(make_boto3_client(Endpoint("local", url)), limiter=RateLimiter.unlimited())
    return sorted((s.image_set_id, s.version_id) for s in hi.search(SEED_DATASTORE_ID))


def test_start_local_seeds_once_and_is_reusable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    seeded: list[SeedResult] = []
    real_seed = seed_module.seed

    def recording_seed(backend: Backend) -> SeedResult:
        seeded.append(real_seed(backend))
        return seeded[-1]

    monkeypatch.setattr(seed_module, "seed", recording_seed)
    db = tmp_path / "state" / "local.sqlite"  # the folder is created on first use
    runs = []
    for _ in range(2):
        emulator, url = start_local(db)
        try:
            assert url.startswith("http://127.0.0.1:")
            assert (
                emulator.config.quotas_enabled and emulator.config.quota_scale == LOCAL_QUOTA_SCALE
            )
            runs.append(snapshot(url))
        finally:
            emulator.stop()
    assert [r.created for r in seeded] == [True, False]  # imported once, found the second time
    assert runs[0] == runs[1] and len(runs[0]) >= 10


def test_connect_local_runs_the_emulator_for_the_block(no_aws_config: None, tmp_path: Path) -> None:
    config = ProjectConfig(local_db=tmp_path / "local.sqlite", profile="not-configured-here")
    with connect(Endpoint("local", source="--endpoint"), config) as hi:
        assert len(list(hi.search(SEED_DATASTORE_ID))) >= 10
        # Paced a hair under the local quotas (the service's times LOCAL_QUOTA_SCALE,
        # bursts too), which the local HealthImaging publishes in Service Quotas.
        assert hi.limiter.rate("UpdateImageSetMetadata") == paced(
            0.25 * LOCAL_QUOTA_SCALE, LOCAL_QUOTA_SCALE
        )
        url = hi._boto.meta.endpoint_url
    with pytest.raises(EndpointUnreachable):  # stopped on leaving the block
        HealthImaging(make_boto3_client(Endpoint("local", url), max_attempts=1)).get_image_set(
            SEED_DATASTORE_ID, "a" * 32
        )


def test_aws_clients_keep_host_prefixes_and_retry_through_the_pacer(no_aws_config: None) -> None:
    boto = make_boto3_client(Endpoint("aws"), region="eu-west-1", max_attempts=7, max_pool=12)
    config = boto.meta.config
    assert config.inject_host_prefix is True
    # botocore sends each request once: the retries (7 attempts) are HealthImaging's,
    # each one waiting for the pacer like any request.
    assert config.retries == {"mode": "standard", "total_max_attempts": 1}
    assert HealthImaging(boto)._max_attempts == 7
    assert config.max_pool_connections == 12
    assert boto.meta.region_name == "eu-west-1"
    assert "amazonaws.com" in boto.meta.endpoint_url
    assert credentials(boto) is None  # nothing configured: nothing invented for AWS


def test_custom_endpoints_turn_host_prefixes_off(no_aws_config: None) -> None:
    boto = make_boto3_client(Endpoint("url", "http://127.0.0.1:9"))
    assert boto.meta.config.inject_host_prefix is False
    assert boto.meta.endpoint_url == "http://127.0.0.1:9"
    assert boto.meta.region_name == "us-east-1"  # SigV4 needs one; any will do
    assert credentials(boto).access_key == LOCAL_ACCESS_KEY  # a fresh machine still works


def test_local_never_sends_real_credentials_nor_reads_aws_config(
    no_aws_config: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEY123456")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "real-secret")
    monkeypatch.setenv("AWS_PROFILE", "missing-profile")
    (tmp_path / "broken").write_text("[unclosed section\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "broken"))
    local = make_boto3_client(Endpoint("local", "http://127.0.0.1:9"), profile="ignored")
    assert credentials(local).access_key == LOCAL_ACCESS_KEY
    monkeypatch.delenv("AWS_PROFILE")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    custom = make_boto3_client(Endpoint("url", "http://127.0.0.1:9"))
    assert credentials(custom).access_key == "AKIAEXAMPLEKEY123456"  # the chain, when it has some


def test_a_local_endpoint_needs_its_url() -> None:
    with pytest.raises(ValueError, match="no URL"):
        make_boto3_client(Endpoint("local"))
