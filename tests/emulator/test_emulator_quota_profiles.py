"""Per-operation quotas from the published profiles, chosen by name, with overrides."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import make_client, serve

from reconciler.cli import cli
from reconciler.emulator import protocol, quota_profiles
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.server import LocalHealthImaging
from reconciler.emulator.signatures import sign


def admin_request(url: str, changes: dict[str, Any] | None) -> urllib.request.Request:
    """A signed admin request (the emulator's default key), as any program sends it."""
    body = b"" if changes is None else json.dumps(changes).encode()
    method = "GET" if changes is None else "POST"
    target = f"{url}/_emulator/settings"
    headers = sign(method, target, body)
    return urllib.request.Request(target, data=body or None, headers=headers, method=method)


def settings(url: str, changes: dict[str, Any] | None = None) -> Any:
    with urllib.request.urlopen(admin_request(url, changes), timeout=10) as response:
        return json.loads(response.read())


def test_every_profile_names_every_operation_of_the_model() -> None:
    operations = set(protocol.service_model().operation_names) | set(quota_profiles.DICOMWEB)
    for name, table in quota_profiles.PROFILES.items():
        assert set(table) == operations, name


def test_control_plane_has_its_own_published_quota(tmp_path: Path) -> None:
    config = EmulatorConfig(db_path=tmp_path / "db.sqlite")  # the default profile
    with LocalHealthImaging(config) as local:
        client = make_client(local.url)
        client.create_datastore(datastoreName="one")  # CreateDatastore: 0.085/s, burst 1
        with pytest.raises(client.exceptions.ThrottlingException, match="CreateDatastore"):
            client.create_datastore(datastoreName="two")
        # ListDatastores has its own bucket: burst 10.
        for _ in range(10):
            client.list_datastores()
        with pytest.raises(client.exceptions.ThrottlingException, match="ListDatastores"):
            client.list_datastores()


def test_profile_and_overrides_change_over_the_settings_endpoint(tmp_path: Path) -> None:
    with LocalHealthImaging(EmulatorConfig(db_path=tmp_path / "db.sqlite")) as local:
        client = make_client(local.url)
        shown = settings(local.url)
        # The default: the newest published text (the page's Markdown source).
        assert shown["quota_profile"] == "fast-updates"
        assert shown["quotas"]["UpdateImageSetMetadata"] == [10.0, 40]
        assert shown["quotas"]["StartDICOMImportJob"] == [40.0, 80]
        assert shown["quotas"]["DeleteImageSet"] == [0.25, 1]
        shown = settings(local.url, {"quota_profile": "standard"})
        assert shown["quotas"]["UpdateImageSetMetadata"] == [0.25, 1]
        shown = settings(local.url, {"quota_profile": "fast-updates"})
        assert shown["quotas"]["UpdateImageSetMetadata"] == [10.0, 40]
        # An override for one operation, on top of the profile.
        shown = settings(local.url, {"quota_overrides": {"CreateDatastore": [0.001, 3]}})
        assert shown["quotas"]["CreateDatastore"] == [0.001, 3]
        assert shown["quotas"]["UpdateImageSetMetadata"] == [10.0, 40]
        for index in range(3):
            client.create_datastore(datastoreName=f"s{index}")
        with pytest.raises(client.exceptions.ThrottlingException):
            client.create_datastore(datastoreName="s3")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"quota_profile": "nope"}, "unknown quota profile 'nope'"),
        ({"quota_profile": 3}, "quota_profile must be"),
        ({"quota_overrides": {"Nope": [1, 1]}}, "unknown operation 'Nope'"),
        ({"quota_overrides": {"GetImageSet": [1]}}, "must be \\[rate, burst\\]"),
        ({"quota_overrides": {"GetImageSet": [0, 1]}}, "rate must be > 0"),
    ],
)
def test_bad_quota_settings_are_refused(
    local: LocalHealthImaging, changes: dict[str, Any], message: str
) -> None:
    request = admin_request(local.url, changes)
    with pytest.raises(urllib.error.HTTPError) as failure:
        urllib.request.urlopen(request, timeout=10)
    assert failure.value.code == 400
    assert re.search(message, json.loads(failure.value.read())["message"])


def test_parse_override() -> None:
    assert quota_profiles.parse_override("UpdateImageSetMetadata=10/40") == (
        "UpdateImageSetMetadata",
        (10.0, 40),
    )
    assert quota_profiles.parse_override("CreateDatastore=.085/1") == (
        "CreateDatastore",
        (0.085, 1),
    )


def test_serve_takes_a_profile_and_overrides(tmp_path: Path) -> None:
    # What Ctrl-C does is tested elsewhere; here the server only has to stop.
    with serve(tmp_path / "db.sqlite", "--quota-profile", "fast-updates",
               "--quota", "GetDatastore=1/2", interrupt=False) as served:  # fmt: skip
        quotas = settings(served.found.group(1))["quotas"]
        assert quotas["UpdateImageSetMetadata"] == [10.0, 40]
        assert quotas["GetDatastore"] == [1.0, 2]


def test_serve_refuses_a_bad_override_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["emulator", "serve", "--db", str(tmp_path / "db"), "--quota", "GetImageSet=fast"]
    )
    assert result.exit_code != 0
    assert "OPERATION=RATE/BURST" in result.output
    assert "Traceback" not in result.output
