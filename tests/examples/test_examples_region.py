"""AWS_REGION is honoured as the AWS SDKs honour it (before AWS_DEFAULT_REGION), and
each recipe's environment signs its requests for the region it sets — judged from
outside: a small proxy in front of the local HealthImaging records the region of every
request's SigV4 credential scope."""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from test_examples_workflows import (
    BIN,
    STATE_BUCKET,
    base_env,
    cron_calls,
    cronjob_calls,
    gitlab_calls,
)

from reconciler.emulator.seed import SEED_DATASTORE_ID, seed
from tests.state_support import bare_s3

ROOT = Path(__file__).resolve().parents[2]
# Any service: HealthImaging's calls and the one to Service Quotas (the pacer's quotas).
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/(?:medical-imaging|servicequotas)/")


class RegionProxy:
    """Forwards every request to ``target`` and keeps the region each was signed for."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.regions: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                found = _SCOPE.search(self.headers.get("Authorization", ""))
                proxy.regions.append(found.group(1) if found else "(unsigned)")
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                upstream = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["Host"] = f"{parts.hostname}:{parts.port}"
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                upstream.close()

            do_GET = do_POST = do_PUT = do_DELETE = _forward

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(local: Any) -> Iterator[RegionProxy]:
    running = RegionProxy(local.url)
    yield running
    running.close()


@pytest.fixture
def project(tmp_path: Path, local: Any, moto_s3: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped manifests against a seeded service; the recipes' state (S3) on
    moto's S3, where the cron recipes name it."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_s3)
    s3 = bare_s3(moto_s3)
    if STATE_BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=STATE_BUCKET)
    seed(local.backend)
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "manifests", repo / "manifests")
    (repo / ".git").mkdir()
    (repo / "reconciler.yaml").write_text(f"datastoreId: {SEED_DATASTORE_ID}\n")
    return repo


def signed_for(project: Path, proxy: RegionProxy, env: dict[str, str]) -> set[str]:
    proxy.regions.clear()
    done = subprocess.run([str(BIN / "reconciler"), "plan"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return set(proxy.regions)


def test_aws_region_is_honoured_before_aws_default_region(
    project: Path, proxy: RegionProxy
) -> None:
    env = base_env(project, proxy.url)
    assert signed_for(project, proxy, {**env, "AWS_REGION": "eu-west-2"}) == {"eu-west-2"}
    assert signed_for(project, proxy, {**env, "AWS_DEFAULT_REGION": "ap-south-1"}) == {"ap-south-1"}
    both = {**env, "AWS_REGION": "eu-west-2", "AWS_DEFAULT_REGION": "ap-south-1"}
    assert signed_for(project, proxy, both) == {"eu-west-2"}


@pytest.mark.parametrize("recipe", ["crontab", "CronJob", "gitlab"])
def test_each_recipe_signs_for_the_region_it_sets(
    project: Path, proxy: RegionProxy, recipe: str
) -> None:
    calls = {"crontab": cron_calls, "CronJob": cronjob_calls,
             "gitlab": lambda: gitlab_calls("reconciler-plan")}[recipe]()  # fmt: skip
    recipe_env = dict(calls[0].env)
    # The region variable the recipe sets (GitLab's is a CI/CD variable docs/ci.md
    # documents as AWS_REGION), given a value that is not the custom-endpoint default.
    names = [n for n in ("AWS_REGION", "AWS_DEFAULT_REGION") if n in recipe_env] or ["AWS_REGION"]
    env = {**base_env(project, proxy.url), **recipe_env, **dict.fromkeys(names, "eu-north-1")}
    env.pop("AWS_PROFILE", None)  # the cron user's profile is not on this machine
    env["RECONCILER_ENDPOINT"] = proxy.url  # the recipe says aws: here, the emulator
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    assert signed_for(project, proxy, env) == {"eu-north-1"}
