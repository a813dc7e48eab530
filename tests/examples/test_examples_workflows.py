"""The CI, cron and Kubernetes examples in examples/ run, so they cannot rot.

Each example is parsed (YAML, or crontab lines). Every `reconciler` invocation in its
shell — GitHub `run:` steps, GitLab `script:` lists, the cron command, the CronJob's
container command — is cut out of the shell around it (`cmd || code=$?`,
`if …; then cmd; fi`, `{ …; cmd; …; }`, `x=$(cmd)`) and run with bash, in the file's
order, in a manifest repository against a seeded local HealthImaging. The environment is
the one the file sets (`env:`, `variables:`, cron assignments, container `env`), with
`${{ … }}` expressions and `$VARS` given test values, the venv's `reconciler` first on
PATH and RECONCILER_ENDPOINT pointing at the emulator (every example sets it to `aws`,
so reconciler.yaml's `endpoint:` is never what CI uses). Each call must exit as the
workflow expects: plan --detailed-exitcode 2 while changes are pending and 0 after,
apply 0, drift 2 after a hand edit and 0 in sync. gh, curl, git and actions are not run;
every reconciler call of the cron and Kubernetes examples must be run by the scenario
below. The GitHub workflows run step by step in test_examples_github_steps.py, the
GitLab pipeline with gitlab-ci-local in test_examples_gitlab_pipeline.py; here they are
only checked for what every example must have.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import string
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from conftest import settle

from reconciler.cli import cli
from reconciler.emulator.seed import SEED_DATASTORE_ID, seed
from tests.state_support import bare_s3, s3_environment

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
GITHUB = EXAMPLES / "github-actions"
GITHUB_WORKFLOWS = ("plan-on-pull-request.yml", "apply-on-merge.yml", "drift-schedule.yml")
GITLAB = EXAMPLES / "gitlab-ci" / ".gitlab-ci.yml"
GITLAB_JOBS = ("reconciler-plan", "reconciler-apply", "reconciler-drift")
CRONTAB = EXAMPLES / "cron" / "crontab"
CRONJOB = EXAMPLES / "cron" / "kubernetes-cronjob.yaml"
IAM = EXAMPLES / "iam"
BIN = Path(sys.executable).parent  # the venv's `reconciler` sits next to its python

MARKER = "<!-- reconciler-plan -->"
SEEDED_PHI = ("CompressedSamples^CT1", "CompressedSamples^MR1", "SAMPLE^CT ONE", "MRN00041", "4MR1")
SUBCOMMANDS = ("validate", "plan", "apply", "drift", "revert", "runs", "history", "ci", "test")

# Test values for what the workflows read from GitHub (`${{ … }}`) and GitLab (`$VARS`).
EXPRESSIONS = {
    "github.event.pull_request.number": "7",
    "github.token": "t0ken",
    "secrets.RECONCILER_NOTIFY_URL": "",
    "steps.saved.outputs.path": "saved-plan/plan.json",
    "vars.RECONCILER_STATE": "s3://examples-state/team",  # moto's S3 (the project fixture)
    "steps.saved.outputs.pr": "7",
}
STATE_BUCKET, STATE_PREFIX = "examples-state", "team"
VARIABLES = {
    "RECONCILER_PLAN_ROLE_ARN": "arn:aws:iam::123456789012:role/reconciler-plan",
    "RECONCILER_APPLY_ROLE_ARN": "arn:aws:iam::123456789012:role/reconciler-apply",
}
# apply-on-merge.yml: where the saved plan of the merged pull request is downloaded to.
SAVED_PLAN = "saved-plan/plan.json"
REVIEWED_PLAN = {"steps.saved.outputs.path != ''": True, "steps.saved.outputs.path == ''": False}
FRESH_PLAN = {"steps.saved.outputs.path != ''": False, "steps.saved.outputs.path == ''": True}
ALWAYS = ("always()", "${{ !cancelled() }}")


# --- Finding the reconciler calls in shell text ---------------------------------------

_OPERATORS = ("&&", "||", ";;", ";", "|", "&", "(", ")")
_COMMAND_WORDS = {"then", "else", "do", "if", "elif", "while", "until", "time", "exec", "!", "{"}
_ASSIGNMENT = re.compile(r"[A-Za-z_]\w*=.*", re.DOTALL)
_HEREDOC = re.compile(r"(?<!<)<<-?(?!<)\s*(['\"]?)([A-Za-z_]\w*)\1")


def _closing(text: str, i: int, opener: str) -> int:
    """The index just past the quote or `$(…)` that opens at ``i``."""
    if opener == "'":
        return text.index("'", i + 1) + 1
    depth, j = 0, i
    while j < len(text):
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if opener == '"' and c == '"' and j > i:
            return j + 1
        if opener == '"' and text.startswith("$(", j):
            j = _closing(text, j, "$(")
            continue
        if opener == "$(":
            if c in "'\"":
                j = _closing(text, j, c)
                continue
            if text.startswith("$(", j) or c == "(":
                depth += 1
                j += 2 if c == "$" else 1
                continue
            if c == ")":
                depth -= 1
                if depth == 0:
                    return j + 1
        j += 1
    raise AssertionError(f"unbalanced {opener} in: {text}")


def _tokens(line: str) -> Iterator[tuple[int, int, str, bool]]:
    """(start, end, text, is_operator) for the words and control operators of one line."""
    i = 0
    while i < len(line):
        if line[i] in " \t":
            i += 1
            continue
        if line[i] == "#":
            return  # a comment
        operator = next((op for op in _OPERATORS if line.startswith(op, i)), None)
        if operator:
            yield i, i + len(operator), operator, True
            i += len(operator)
            continue
        start = i
        while i < len(line) and line[i] not in " \t;|()":
            c = line[i]
            if c == "&" and line[i - 1 : i] not in (">", "<"):  # `2>&1` stays a word
                break
            if c == "\\":
                i += 2
            elif c in "'\"":
                i = _closing(line, i, c)
            elif line.startswith("$(", i):
                i = _closing(line, i, "$(")
            else:
                i += 1
        yield start, i, line[start:i], False


def _substitutions(word: str) -> Iterator[str]:
    """The command text inside each `$(…)` of a word (not inside single quotes)."""
    i, in_double_quotes = 0, False
    while i < len(word):
        c = word[i]
        if c == "\\":
            i += 2
        elif c == '"':
            in_double_quotes = not in_double_quotes
            i += 1
        elif c == "'" and not in_double_quotes:
            i = _closing(word, i, "'")
        elif word.startswith("$(", i):
            end = _closing(word, i, "$(")
            yield word[i + 2 : end - 1]
            i = end
        else:
            i += 1


def invocations(line: str) -> list[str]:
    """Every `reconciler …` command of one shell line, as text, redirections included."""
    found: list[str] = []
    tokens = list(_tokens(line))
    expect_command, assignments = True, None  # where `A=1 B=2 reconciler …` starts
    for index, (start, _, text, is_operator) in enumerate(tokens):
        if is_operator:
            expect_command, assignments = True, None
            continue
        for inner in _substitutions(text):
            found.extend(invocations(inner))
        if expect_command and text == "reconciler":
            end = start
            for _, word_end, _, operator in tokens[index:]:
                if operator:
                    break
                end = word_end
            found.append(line[start if assignments is None else assignments : end])
        if expect_command and _ASSIGNMENT.match(text):
            assignments = start if assignments is None else assignments
        else:
            assignments = None
            expect_command = expect_command and text in _COMMAND_WORDS
    return found


def shell_lines(script: str) -> Iterator[str]:
    """A script's logical lines: continuations joined, here-document bodies left out."""
    lines = iter(script.replace("\\\n", " ").splitlines())
    for line in lines:
        yield line
        heredoc = _HEREDOC.search(line)
        if heredoc:
            for body in lines:
                if body.strip() == heredoc.group(2):
                    break


def calls_in(script: str) -> list[str]:
    return [call for line in shell_lines(script) for call in invocations(line)]


def subcommand(command: str) -> str:
    words = command.split()
    return next((w for w in words[1:] if w in SUBCOMMANDS), "")


# --- The calls of each example ---------------------------------------------------------


@dataclass(frozen=True)
class Call:
    where: str  # file and step/job
    command: str  # one reconciler invocation, as the shell would run it
    env: tuple[tuple[str, str], ...] = ()  # what the file sets around it
    condition: str | None = None  # a GitHub step's `if:`


def _expressions(text: str, where: str) -> str:
    def value(match: re.Match[str]) -> str:
        expression = match.group(1).strip()
        assert expression in EXPRESSIONS, (
            f"{where}: give the test a value for ${{{{ {expression} }}}}"
        )
        return EXPRESSIONS[expression]

    return re.sub(r"\$\{\{(.*?)\}\}", value, text)


def _env(where: str, *layers: dict[str, Any] | None) -> tuple[tuple[str, str], ...]:
    merged: dict[str, str] = {}
    for layer in layers:
        for name, raw in (layer or {}).items():
            text = _expressions(str(raw), where)
            merged[name] = string.Template(text).safe_substitute({**VARIABLES, **merged})
    return tuple(merged.items())


def github_calls(name: str) -> list[Call]:
    workflow = yaml.safe_load((GITHUB / name).read_text())
    calls: list[Call] = []
    for job_name, job in workflow["jobs"].items():
        for step in job["steps"]:
            if "run" not in step:
                continue
            commands = calls_in(step["run"])
            if not commands:
                continue
            where = f"{name}: {job_name}: {step.get('name', step['run'][:40])}"
            env = _env(where, workflow.get("env"), job.get("env"), step.get("env"))
            calls.extend(Call(where, command, env, step.get("if")) for command in commands)
    return calls


def gitlab_calls(job_name: str) -> list[Call]:
    pipeline = yaml.safe_load(GITLAB.read_text())
    job = pipeline[job_name]
    env = _env(job_name, pipeline.get("variables"), job.get("variables"))
    calls: list[Call] = []
    for part in ("before_script", "script", "after_script"):
        for item in job.get(part, []):
            calls.extend(Call(f".gitlab-ci.yml: {job_name}", c, env) for c in calls_in(item))
    return calls


def _filled(env: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """A cron file's placeholders for the state's bucket and prefix, filled in."""
    return tuple(
        (name, value.replace("STATE_BUCKET", STATE_BUCKET).replace("STATE_PREFIX", STATE_PREFIX))
        for name, value in env
    )


def cron_calls() -> list[Call]:
    assignments: dict[str, str] = {}
    commands = []
    for line in CRONTAB.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        assignment = re.fullmatch(r"([A-Za-z_]\w*)\s*=\s*(.*)", line)
        if assignment:
            assignments[assignment.group(1)] = assignment.group(2)
            continue
        fields = line.split(None, 1 if line.startswith("@") else 5)
        commands.append(fields[-1])  # the command after the schedule
    env = _filled(tuple(assignments.items()))
    return [Call("crontab", c, env) for command in commands for c in calls_in(command)]


def cronjob_calls() -> list[Call]:
    documents = list(yaml.safe_load_all(CRONJOB.read_text()))
    cronjob = next(d for d in documents if d["kind"] == "CronJob")
    calls: list[Call] = []
    for container in cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]:
        argv = [*container.get("command", []), *container.get("args", [])]
        script = argv[argv.index("-c") + 1]
        env = _filled(_env("CronJob", {e["name"]: e["value"] for e in container.get("env", [])}))
        calls.extend(Call(f"CronJob: {container['name']}", c, env) for c in calls_in(script))
    return calls


def all_calls() -> dict[str, list[Call]]:
    return {
        **{name: github_calls(name) for name in GITHUB_WORKFLOWS},
        **{f".gitlab-ci.yml {job}": gitlab_calls(job) for job in GITLAB_JOBS},
        "crontab": cron_calls(),
        "kubernetes-cronjob.yaml": cronjob_calls(),
    }


# --- Running them ----------------------------------------------------------------------


def expected_exit(command: str, pending: bool) -> int:
    """What the workflows expect: changes pending (2) or not (0); everything else 0."""
    sub = subcommand(command)
    if sub == "drift" or (sub == "plan" and "--detailed-exitcode" in command):
        return 2 if pending else 0
    return 0


@dataclass
class Runner:
    project: Path
    env: dict[str, str]
    ran: set[Call] = field(default_factory=set)
    outputs: list[str] = field(default_factory=list)

    def run(
        self, calls: list[Call], *, pending: bool, conditions: dict[str, bool] | None = None
    ) -> bool:
        """Run ``calls`` in order; returns whether changes are still pending after them."""
        assert calls
        for call in calls:
            if call.condition is not None and call.condition not in ALWAYS:
                assert call.condition in (conditions or {}), (
                    f"{call.where}: tell the test when `if: {call.condition}` holds"
                )
                if not (conditions or {})[call.condition]:
                    continue
            env = {**self.env, **dict(call.env)}
            env["RECONCILER_ENDPOINT"] = self.env["RECONCILER_ENDPOINT"]  # the emulator
            env.pop("AWS_PROFILE", None)  # a cron user's profile: not on this machine
            env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"  # the file's PATH, venv first
            done = subprocess.run(
                ["bash", "-c", call.command], cwd=self.project, env=env,
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            expected = expected_exit(call.command, pending)
            assert done.returncode == expected, (
                f"{call.where}: `{call.command}` exited {done.returncode}, the workflow "
                f"expects {expected}\n{done.stdout}\n{done.stderr}"
            )
            self.ran.add(call)
            self.outputs.append(done.stdout + done.stderr)
            if subcommand(call.command) == "apply":
                pending = False
        return pending


def hand_edit(client: Any) -> None:
    """Someone puts an image set that the last apply changed back to its old version."""
    shown = CliRunner().invoke(cli, ["runs", "show", "last", "-o", "json"])
    assert shown.exit_code == 0, shown.output
    changed = json.loads(shown.output)["image_sets"][0]
    image_set = changed["image_set_id"]
    latest = client.get_image_set(datastoreId=SEED_DATASTORE_ID, imageSetId=image_set)
    client.update_image_set_metadata(
        datastoreId=SEED_DATASTORE_ID, imageSetId=image_set,
        latestVersionId=latest["versionId"],
        updateImageSetMetadataUpdates={"revertToVersionId": changed["from_version"]},
    )  # fmt: skip
    settle(client, SEED_DATASTORE_ID, image_set)


def assert_masked(*texts: str) -> None:
    for text in texts:
        assert not any(phi in text for phi in SEEDED_PHI), "PHI in CI output"


@pytest.fixture
def project(tmp_path: Path, local: Any, moto_s3: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A manifest repository: the shipped manifests, reconciler.yaml, a seeded service,
    and an empty state bucket (moto's S3: the state the recipes name).

    reconciler.yaml names an endpoint nothing listens on and no state: the examples
    must get both from RECONCILER_ENDPOINT and RECONCILER_STATE, as in CI.
    """
    seed(local.backend)
    s3 = bare_s3(moto_s3)
    if STATE_BUCKET in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        for key in [o["Key"] for o in s3.list_objects_v2(Bucket=STATE_BUCKET).get("Contents", [])]:
            s3.delete_object(Bucket=STATE_BUCKET, Key=key)
    else:
        s3.create_bucket(Bucket=STATE_BUCKET)
    for name, value in s3_environment(moto_s3).items():  # for the in-process calls
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RECONCILER_STATE", f"s3://{STATE_BUCKET}/{STATE_PREFIX}")
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "manifests", repo / "manifests")
    (repo / ".git").mkdir()
    (repo / "reconciler.yaml").write_text(
        f"endpoint: http://127.0.0.1:9\ndatastoreId: {SEED_DATASTORE_ID}\n"
        "rateLimits: {UpdateImageSetMetadata: 100}\n"
        "lockTimeoutSeconds: 20\n"
    )
    monkeypatch.chdir(repo)
    monkeypatch.setenv("RECONCILER_ENDPOINT", local.url)  # for the in-process calls
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    return repo


def base_env(project: Path, url: str, **platform: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("AWS_", "RECONCILER_", "GITHUB_", "GITLAB_", "CI"))}  # fmt: skip
    home = project.parent
    return {
        **keep,
        "PATH": f"{BIN}{os.pathsep}{keep.get('PATH', '')}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": str(home / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL_S3": os.environ["AWS_ENDPOINT_URL_S3"],  # the state: moto's S3
        "CI": "true",
        "RECONCILER_ENDPOINT": url,
        **platform,
    }


# --- The scenarios ---------------------------------------------------------------------


def test_crontab_and_kubernetes_cronjob_check_drift(project: Path, local: Any) -> None:
    runner = Runner(project, base_env(project, local.url))
    cron, cronjob = cron_calls(), cronjob_calls()

    runner.run(cron + cronjob, pending=True)  # manifests not applied yet: drift
    applied = CliRunner().invoke(cli, ["apply", "--auto-approve"])
    assert applied.exit_code == 0, applied.output
    runner.run(cron + cronjob, pending=False)

    assert runner.ran == set(cron + cronjob)
    assert_masked(*runner.outputs)


# --- What every example must have ------------------------------------------------------


def test_every_example_calls_reconciler_as_its_job_needs() -> None:
    calls = all_calls()
    used = {name: {subcommand(c.command) for c in found} for name, found in calls.items()}
    assert used["plan-on-pull-request.yml"] >= {"validate", "plan", "ci", "test"}
    assert used["apply-on-merge.yml"] >= {"apply", "runs", "drift"}
    assert used["drift-schedule.yml"] == {"drift", "ci"}
    assert used[".gitlab-ci.yml reconciler-plan"] >= {"validate", "plan", "ci"}
    assert used[".gitlab-ci.yml reconciler-apply"] >= {"apply"}
    assert used[".gitlab-ci.yml reconciler-drift"] == {"drift", "ci"}
    assert used["crontab"] == used["kubernetes-cronjob.yaml"] == {"drift"}
    for name, found in calls.items():
        for call in found:
            assert subcommand(call.command), f"{name}: not a reconciler command: {call.command}"
            assert "--show-phi" not in call.command, f"{name}: CI output must stay masked"
            # The endpoint comes from RECONCILER_ENDPOINT=aws, never from reconciler.yaml.
            assert dict(call.env).get("RECONCILER_ENDPOINT") == "aws", f"{name}: {call.where}"
    saved = [c.command for c in calls["apply-on-merge.yml"] if subcommand(c.command) == "apply"]
    assert 'reconciler apply --reviewed "$SAVED_PLAN" > apply.txt' in saved
    assert "reconciler apply --auto-approve > apply.txt" in saved


def test_github_workflows_pin_actions_and_keep_expressions_out_of_scripts() -> None:
    for name in GITHUB_WORKFLOWS:
        workflow = yaml.safe_load((GITHUB / name).read_text())
        assert workflow["permissions"], name  # least privilege, stated
        for job in workflow["jobs"].values():
            for step in job["steps"]:
                if "uses" in step:
                    assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
                if "run" in step:  # `${{ }}` in a script is an injection risk: use env:
                    assert "${{" not in step["run"], f"{name}: {step.get('name')}"


def test_pull_request_and_drift_jobs_are_read_only() -> None:
    """A pull request can change manifests but must not change data; drift only reads."""
    read_only = [
        *github_calls("plan-on-pull-request.yml"), *github_calls("drift-schedule.yml"),
        *gitlab_calls("reconciler-plan"), *gitlab_calls("reconciler-drift"),
        *cron_calls(), *cronjob_calls(),
    ]  # fmt: skip
    assert not {subcommand(c.command) for c in read_only} & {"apply", "revert"}
    workflow = yaml.safe_load((GITHUB / "plan-on-pull-request.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads `on:` as true
    assert set(triggers) == {"pull_request"}  # never pull_request_target
    assert workflow["permissions"]["contents"] == "read"


def test_iam_policies_are_valid_least_privilege_json() -> None:
    read_only = json.loads((IAM / "read-only-policy.json").read_text())
    write = json.loads((IAM / "write-policy.json").read_text())
    trust = json.loads((IAM / "github-oidc-trust.json").read_text())

    # One data store, the state's bucket and prefix, the state's key: never "*".
    places = {
        "medical-imaging": "arn:aws:medical-imaging:REGION:ACCOUNT:datastore/DATASTORE_ID",
        "s3": "arn:aws:s3:::STATE_BUCKET",
        "kms": "arn:aws:kms:REGION:ACCOUNT:key/STATE_KEY_ID",
    }

    def actions(policy: dict[str, Any]) -> set[str]:
        found = set()
        for statement in policy["Statement"]:
            assert statement["Effect"] == "Allow" and policy["Version"] == "2012-10-17"
            for action in statement["Action"]:
                for resource in statement["Resource"]:
                    assert resource.startswith(places[action.split(":")[0]]), resource
            found |= set(statement["Action"])
        return found

    reads = {
        f"medical-imaging:{a}"
        for a in (
            "GetImageSet",
            "GetImageSetMetadata",
            "SearchImageSets",
            "ListImageSetVersions",
            "GetDatastore",
        )
    }
    state_reads = {"s3:GetObject", "s3:ListBucket"}
    state_writes = {"s3:PutObject", "s3:DeleteObject", "kms:GenerateDataKey", "kms:Decrypt"}
    assert actions(read_only) == reads | state_reads
    assert actions(write) == reads | {"medical-imaging:UpdateImageSetMetadata"} | state_reads | (
        state_writes
    )
    # STS GetCallerIdentity (who holds the state lock, which account scopes the state)
    # needs no permission at all: it is in no policy.
    assert not any(a.startswith("sts:") for a in actions(read_only) | actions(write))
    bucket = json.loads((IAM / "state-bucket-policy.json").read_text())
    assert {s["Effect"] for s in bucket["Statement"]} == {"Allow", "Deny"}
    # --replace-primary: copies, deletes, and the tags that prove a copy is the run's.
    replace = json.loads((IAM / "replace-primary-policy.json").read_text())
    assert actions(replace) == {
        f"medical-imaging:{a}"
        for a in ("CopyImageSet", "DeleteImageSet", "TagResource", "ListTagsForResource")
    }

    plan_role, apply_role = trust["ReconcilerPlanRole"], trust["ReconcilerApplyRole"]
    for role in (plan_role, apply_role):
        (statement,) = role["Statement"]
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert statement["Condition"]["StringEquals"][
            "token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"  # fmt: skip

    def subjects(role: dict[str, Any]) -> set[str]:
        value = role["Statement"][0]["Condition"]["StringEquals"][
            "token.actions.githubusercontent.com:sub"]  # fmt: skip
        return {value} if isinstance(value, str) else set(value)

    assert subjects(plan_role) == {
        "repo:OWNER/REPO:pull_request",
        "repo:OWNER/REPO:ref:refs/heads/main",
    }
    assert subjects(apply_role) == {"repo:OWNER/REPO:ref:refs/heads/main"}


def test_the_call_finder() -> None:
    assert calls_in("code=0\nreconciler drift -o markdown > drift.md || code=$?") == [
        "reconciler drift -o markdown > drift.md"
    ]
    assert calls_in('if [ "$c" -eq 0 ]; then reconciler apply --auto-approve 2>&1 || c=$?; fi') == [
        "reconciler apply --auto-approve 2>&1"
    ]
    assert calls_in("x=$(reconciler runs show last -o json | jq .run)") == [
        "reconciler runs show last -o json"
    ]
    assert calls_in('echo "== $(date) reconciler drift"; A=1 reconciler drift  # why') == [
        "A=1 reconciler drift"
    ]
    assert calls_in('echo "it\'s $(reconciler runs)"') == ["reconciler runs"]
    assert (
        calls_in("pip install reconciler\necho 'reconciler plan'\ncat <<'PY'\nreconciler plan\nPY")
        == []
    )
    assert calls_in("reconciler plan \\\n  --out plan.json") == [
        "reconciler plan    --out plan.json"
    ]
