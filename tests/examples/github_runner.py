"""Runs a GitHub Actions workflow's job here, step by step, as the runner would.

Every ``run:`` step is run whole with ``bash --noprofile --norc -eo pipefail`` (the
runner's ``shell: bash``), its ``${{ }}`` expressions evaluated, in the job's working
directory, with the runner's files emulated: ``GITHUB_OUTPUT`` (read back into
``steps.<id>.outputs``), ``GITHUB_ENV`` and ``GITHUB_PATH`` (carried to later steps),
``GITHUB_STEP_SUMMARY`` (collected into the job summary), and the runner's variables
(``GITHUB_REPOSITORY``, ``GITHUB_SHA``, ``GITHUB_EVENT_PATH``, …). ``if:`` conditions
are evaluated (``success()``, ``always()``, ``!cancelled()``, ``==``, ``!=``, ``&&``,
``||``, ``!``), so a failed step skips what a failed step skips on GitHub. Workflow
commands the steps print (``::error …::``) are collected as annotations.

What is not GitHub's to run here is emulated and said so: ``actions/checkout`` and
``actions/setup-python`` do nothing (the job runs in the checkout, on this Python),
``aws-actions/configure-aws-credentials`` sets the region (the credentials are the
test's), ``actions/upload-artifact`` copies the files into an artifact store the test
can read. Anything else is refused. The test may override variables the workflow sets
(``overrides``): the endpoint (the local HealthImaging), where pip installs from, the
API URL (a local stand-in for GitHub's REST API).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<op>==|!=|&&|\|\||!|\(|\))|"
    r"(?P<word>[A-Za-z_][\w.\-]*(?:\(\))?))"
)


@dataclass
class Step:
    name: str
    id: str | None
    outcome: str  # success | failure | skipped
    code: int | None
    output: str


@dataclass
class Job:
    steps: list[Step] = field(default_factory=list)
    annotations: list[str] = field(default_factory=list)
    summary: str = ""

    @property
    def failed(self) -> bool:
        return any(s.outcome == "failure" for s in self.steps)

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)


class _Expression:
    """GitHub's expression language, as much as the recipes use."""

    def __init__(self, text: str, context: Mapping[str, Any], status: str) -> None:
        self.tokens = [m for m in _TOKEN.finditer(text) if m.group().strip()]
        self.consumed = sum(len(m.group()) for m in self.tokens)
        assert self.consumed == len(text.rstrip()) or not text.strip(), f"cannot parse: {text}"
        self.i = 0
        self.context = context
        self.status = status

    def value(self) -> Any:
        result = self._or()
        assert self.i == len(self.tokens), "trailing tokens"
        return result

    def _peek(self) -> str | None:
        return self.tokens[self.i].group().strip() if self.i < len(self.tokens) else None

    def _take(self) -> str:
        token = self.tokens[self.i].group().strip()
        self.i += 1
        return token

    def _or(self) -> Any:
        left = self._and()
        while self._peek() == "||":
            self._take()
            right = self._and()
            left = left if _truthy(left) else right
        return left

    def _and(self) -> Any:
        left = self._compare()
        while self._peek() == "&&":
            self._take()
            right = self._compare()
            left = right if _truthy(left) else left
        return left

    def _compare(self) -> Any:
        left = self._unary()
        while self._peek() in ("==", "!="):
            op = self._take()
            right = self._unary()
            same = str(_text(left)).lower() == str(_text(right)).lower()
            left = same if op == "==" else not same
        return left

    def _unary(self) -> Any:
        if self._peek() == "!":
            self._take()
            return not _truthy(self._unary())
        if self._peek() == "(":
            self._take()
            inner = self._or()
            assert self._take() == ")"
            return inner
        token = self._take()
        if token.startswith("'"):
            return token[1:-1].replace("''", "'")
        if token.endswith("()"):
            return {
                "always()": True,
                "cancelled()": False,
                "success()": self.status == "success",
                "failure()": self.status == "failure",
            }[token]
        node: Any = self.context
        for part in token.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        return node


def _truthy(value: Any) -> bool:
    return value not in (None, False, "", 0)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _outputs(path: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    lines = path.read_text().splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        line = lines[i]
        heredoc = re.fullmatch(r"([^=<]+)<<(\S+)", line)
        if heredoc:
            end = lines.index(heredoc.group(2), i + 1)
            found[heredoc.group(1)] = "\n".join(lines[i + 1 : end])
            i = end + 1
            continue
        if "=" in line:
            name, value = line.split("=", 1)
            found[name] = value
        i += 1
    return found


@dataclass
class Runner:
    workflow: Path
    workdir: Path
    env: dict[str, str]  # the machine's environment (PATH, credentials)
    overrides: dict[str, str]  # what the test points elsewhere (module docstring)
    event_name: str
    event: dict[str, Any]
    vars: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    artifacts: Path | None = None  # upload-artifact writes artifacts/<name>/
    repository: str = "imaging/manifests"
    sha: str = "0" * 40
    run_id: str = "1001"

    def _context(self, steps: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
        return {
            "github": {
                "event_name": self.event_name,
                "event": self.event,
                "repository": self.repository,
                "sha": self.sha,
                "run_id": self.run_id,
                "token": "t0ken",
                "ref_name": "main",
            },
            "vars": self.vars,
            "secrets": self.secrets,
            "steps": steps,
            "env": dict(env),
        }

    def _substitute(self, text: str, context: Mapping[str, Any], status: str) -> str:
        return re.sub(
            r"\$\{\{(.*?)\}\}",
            lambda m: _text(_Expression(m.group(1), context, status).value()),
            text,
        )

    def run(self, job_name: str) -> Job:
        workflow = yaml.safe_load(self.workflow.read_text())
        job_spec = workflow["jobs"][job_name]
        job = Job()
        steps: dict[str, Any] = {}
        scratch = self.workdir.parent / f".runner-{job_name}"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
        event_path = scratch / "event.json"
        event_path.write_text(json.dumps(self.event))
        carried: dict[str, str] = {}  # GITHUB_ENV
        path_extra: list[str] = []  # GITHUB_PATH
        status = "success"
        base = {
            **self.env,
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_REPOSITORY": self.repository,
            "GITHUB_SHA": self.sha,
            "GITHUB_RUN_ID": self.run_id,
            "GITHUB_REF_NAME": "main",
            "GITHUB_EVENT_NAME": self.event_name,
            "GITHUB_EVENT_PATH": str(event_path),
            "GITHUB_SERVER_URL": "https://github.example",
            "GITHUB_WORKSPACE": str(self.workdir),
            "RUNNER_TEMP": str(scratch),
            "RUNNER_OS": "Linux",
        }
        for number, spec in enumerate(job_spec["steps"]):
            name = spec.get("name") or spec.get("uses") or spec["run"].splitlines()[0]
            layered: dict[str, str] = {}
            context = self._context(steps, {**base, **carried})
            for layer in (workflow.get("env"), job_spec.get("env"), spec.get("env")):
                for key, raw in (layer or {}).items():
                    context["env"] = {**base, **carried, **layered}
                    layered[key] = self._substitute(str(raw), context, status)
            env = {**base, **layered, **carried, **self.overrides}
            context = self._context(steps, env)
            condition = str(spec.get("if", "success()")).strip()
            condition = condition.removeprefix("${{").removesuffix("}}").strip()
            if not re.search(r"\b(always|cancelled|success|failure)\(\)", condition):
                condition = f"success() && ({condition})"
            if not _truthy(_Expression(condition, context, status).value()):
                job.steps.append(Step(name, spec.get("id"), "skipped", None, ""))
                continue
            if "uses" in spec:
                outcome, output = self._action(spec, context, status, env, carried)
                code = 0 if outcome == "success" else 1
            else:
                files = {
                    k: scratch / f"{k.lower()}-{number}"
                    for k in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_STEP_SUMMARY", "GITHUB_PATH")
                }
                for file in files.values():
                    file.write_text("")
                script = scratch / f"step-{number}.sh"
                script.write_text(self._substitute(spec["run"], context, status))
                env = {**env, **{k: str(v) for k, v in files.items()}}
                env["PATH"] = os.pathsep.join([*path_extra, env["PATH"]])
                done = subprocess.run(
                    ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                    cwd=self.workdir,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=300,
                    check=False,
                )
                code, output = done.returncode, done.stdout + done.stderr
                outcome = "success" if code == 0 else "failure"
                if "id" in spec:
                    steps[spec["id"]] = {
                        "outputs": _outputs(files["GITHUB_OUTPUT"]),
                        "outcome": outcome,
                    }
                carried.update(_outputs(files["GITHUB_ENV"]))
                path_extra = [*files["GITHUB_PATH"].read_text().split(), *path_extra]
                job.summary += files["GITHUB_STEP_SUMMARY"].read_text()
            job.annotations += [
                line for line in output.splitlines() if line.startswith(("::error", "::warning"))
            ]
            job.steps.append(Step(name, spec.get("id"), outcome, code, output))
            if outcome == "failure":
                status = "failure"
        return job

    def _action(
        self,
        spec: dict[str, Any],
        context: Mapping[str, Any],
        status: str,
        env: Mapping[str, str],
        carried: dict[str, str],
    ) -> tuple[str, str]:
        action = spec["uses"].split("@", 1)[0]
        given = {
            k: self._substitute(str(v), context, status)
            for k, v in (spec.get("with") or {}).items()
        }
        if action in ("actions/checkout", "actions/setup-python"):
            return "success", f"(emulated) {action}: the job runs in the checkout"
        if action == "aws-actions/configure-aws-credentials":
            carried["AWS_REGION"] = carried["AWS_DEFAULT_REGION"] = given["aws-region"]
            return "success", f"(emulated) {action}: the test's credentials"
        if action == "actions/upload-artifact":
            assert self.artifacts is not None, "this job uploads artifacts: give it a store"
            target = self.artifacts / given["name"]
            target.mkdir(parents=True, exist_ok=True)
            paths = [p.strip() for p in given["path"].splitlines() if p.strip()]
            found = [self.workdir / p for p in paths if (self.workdir / p).exists()]
            if not found and given.get("if-no-files-found", "warn") == "error":
                return "failure", f"::error::No files were found with the provided path: {paths}"
            for file in found:
                shutil.copy(file, target / file.name)
            return "success", f"(emulated) uploaded {len(found)} files as {given['name']}"
        raise AssertionError(f"no emulation for the action {action}")
