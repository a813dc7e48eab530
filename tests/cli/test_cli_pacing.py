"""What apply says about its pace: the rate reached and where the start came from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cli_support import manifest_repository, run
from wire_support import set_quotas

from reconciler.cli.output import pacing_line

UPDATE = "UpdateImageSetMetadata"


def test_apply_names_the_published_quota_it_started_from(
    tmp_path: Path, local: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest_repository(tmp_path, local, monkeypatch, settings="")
    set_quotas(local, {}, "fast-updates")  # Service Quotas lists 10/s burst 40
    result = run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("Rate reached:"))
    assert f"{UPDATE} " in line and "(started at 9.7/s, the quota Service Quotas lists)" in line


def test_the_rate_line_says_what_was_shown_and_what_was_refused() -> None:
    lane = {"start": 0.2414, "rate": 988.0, "reached": 9.6, "accepted": 20, "throttled": 2,
            "source": "documented"}  # fmt: skip
    assert pacing_line({UPDATE: lane, "GetImageSet": {"accepted": 5, "rate": 24.0}}) == (
        f"Rate reached: {UPDATE} 9.6/s (started at 0.241/s, the documented quota; 2 throttled)."
    )
    remembered = {**lane, "source": "remembered", "throttled": 0}
    assert "(started at 0.241/s, where the last run got)" in str(pacing_line({UPDATE: remembered}))
    assert pacing_line({UPDATE: {**lane, "accepted": 0}}) is None  # nothing was written
