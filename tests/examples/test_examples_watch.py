"""The ``drift --watch`` service examples run, so they cannot rot: the systemd unit's
ExecStart and the Kubernetes Deployment's container command, each run as its file
says (its environment, ``${VAR}`` and ``$(VAR)`` expanded as systemd and Kubernetes
do) against the local HealthImaging and its events queue — a foreign update reaches the
webhook, and the stop signal each sends (SIGTERM) ends the watcher as the file expects
(exit 130, systemd's SuccessExitStatus). What points at AWS (endpoint, queue, state,
profile) is given the local equivalents. The IAM policy and the CloudFormation
template that routes the events are checked for what they must allow, and no more."""

from __future__ import annotations

import json
import re
import shlex
import signal
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import set_study_description, wait_for
from watch_support import NM, NM_STUDY, InProcess, Services, project, seeded, services, study

from reconciler.cli import cli
from reconciler.emulator.seed import SEED_DATASTORE_ID

__all__ = ["seeded", "services"]  # the fixtures

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
UNIT = EXAMPLES / "watch" / "reconciler-drift-watch.service"
DEPLOYMENT = EXAMPLES / "watch" / "kubernetes-deployment.yaml"
ROUTING = EXAMPLES / "watch" / "eventbridge-to-sqs.yaml"
POLICY = EXAMPLES / "iam" / "watch-policy.json"


def local(services: Services) -> dict[str, str]:
    """The local stand-ins for what the examples point at AWS."""
    return {
        "RECONCILER_ENDPOINT": services.ahi.url,
        "RECONCILER_STATE": "local",
        "RECONCILER_WATCH_QUEUE": services.queue_url,
        "RECONCILER_NOTIFY_URL": services.hook,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }


def systemd_command(stand_ins: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The unit's ExecStart words after the binary, and its Environment= settings."""
    env: dict[str, str] = {}
    command = ""
    for line in UNIT.read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "Environment":
            name, _, setting = value.partition("=")
            env[name] = setting
        elif key == "ExecStart":
            command = value
    assert env["RECONCILER_ENDPOINT"] == "aws" and "AWS_PROFILE" in env
    env.pop("AWS_PROFILE")  # a profile of this machine's: none here
    env.update(stand_ins)
    binary, *words = shlex.split(re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], command))
    assert binary == "/opt/reconciler/venv/bin/reconciler"
    return words, env


def deployment_command(stand_ins: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    documents = list(yaml.safe_load_all(DEPLOYMENT.read_text()))
    (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["reconciler"]
    env = {item["name"]: item.get("value", "") for item in container["env"]}
    assert env["RECONCILER_STATE"].startswith("s3://")  # a pod's disk does not outlive it
    env.update(stand_ins)
    words = [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], arg) for arg in container["args"]]
    return words, env


def test_the_service_examples_watch_and_stop_cleanly(
    tmp_path: Path, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path / "repo", services, {"nm": study(NM_STUDY, "NM BONE SCAN")})
    monkeypatch.chdir(root)
    assert CliRunner().invoke(cli, ["apply", "--auto-approve"]).exit_code == 0
    for number, (words, env) in enumerate(
        (systemd_command(local(services)), deployment_command(local(services))), start=1
    ):
        watcher = InProcess(root, services, words, env)
        ready = "full check" if number == 1 else "Resumed from the watch checkpoint"
        watcher.wait_for_line(ready, stderr=number > 1)
        set_study_description(services.client, SEED_DATASTORE_ID, NM, f"FOREIGN {number}")
        wait_for(lambda: len(services.hosts.hooks) == number, 30, "the notification")  # noqa: B023
        services.drained()
        watcher.process.send_signal(signal.SIGTERM)  # systemctl stop, a pod's termination
        assert watcher.process.wait(timeout=30) == 130
        assert any(line.startswith("Stopped") for line in watcher.errors)
    assert "1 new" in services.hosts.hooks[0]["text"]
    assert "1 changed" in services.hosts.hooks[1]["text"]


def test_the_watchers_policy_allows_what_it_does_and_no_more() -> None:
    policy = json.loads(POLICY.read_text())
    allowed: dict[str, set[str]] = {}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        for resource in statement["Resource"]:
            assert resource.startswith(
                (
                    "arn:aws:medical-imaging:REGION:ACCOUNT:datastore/DATASTORE_ID",
                    "arn:aws:sqs:REGION:ACCOUNT:healthimaging-events",
                )
            )
        for action in statement["Action"]:
            service, _, name = action.partition(":")
            allowed.setdefault(service, set()).add(name)
    assert allowed == {
        "medical-imaging": {
            "GetDatastore",
            "SearchImageSets",
            "GetImageSet",
            "GetImageSetMetadata",
            "GetDICOMImportJob",
        },
        "sqs": {"GetQueueAttributes", "ReceiveMessage", "ChangeMessageVisibility", "DeleteMessage"},
    }


def test_the_routing_sends_the_data_stores_events_and_only_the_rule_may() -> None:
    cfnlint = pytest.importorskip("cfnlint.api", reason="cfn-lint comes with moto[server]")
    assert cfnlint.lint_file(ROUTING) == []  # a template CloudFormation accepts
    # CloudFormation's full function syntax (Ref, Fn::GetAtt), not its short YAML tags:
    # a plain YAML file, so `reconciler validate examples` reads it as one.
    template = yaml.safe_load(ROUTING.read_text())
    resources = template["Resources"]
    pattern = resources["FromHealthImaging"]["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.medical-imaging"]
    acted_on = {
        "Image Set Created",
        "Image Set Copied",
        "Image Set Copy Failed",
        "Image Set Updated",
        "Image Set Update Failed",
        "Image Set Deleted",
        "Import Job Completed",
    }
    assert set(pattern["detail-type"]) == acted_on
    (statement,) = resources["EventsPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage" and "aws:SourceArn" in str(statement)
