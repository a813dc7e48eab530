"""The living PR comment as posted, on GitHub and on GitLab: created once, updated in place with
the earlier plans collapsed, split past the host's size limit (and shrunk back), a
"No plan" notice when the plan failed, and a failure to post that fails the job. The
host is a local stand-in for the REST API (tests/hosts_support.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hosts_support import FakeHosts
from test_render_markdown import many
from test_render_text import scenario

from reconciler.cli import cli
from reconciler.reach.comment import split
from reconciler.render.markdown import MARKER, render_plan_markdown


@pytest.fixture
def hosts() -> Iterator[FakeHosts]:
    with FakeHosts() as running:
        yield running


def post(path: Path, env: dict[str, str]) -> Result:
    return CliRunner().invoke(cli, ["ci", "comment", str(path)], env=env, catch_exceptions=False)


def write(tmp_path: Path, markdown: str, name: str = "plan.md") -> Path:
    (tmp_path / name).write_text(markdown)
    return tmp_path / name


def test_one_comment_per_pull_request_updated_in_place(
    tmp_path: Path, hosts: FakeHosts, snapshot: Any
) -> None:
    first = scenario()
    second = dataclasses.replace(first, created_at="2026-01-03T03:04:05+00:00",
                                 image_sets=first.image_sets[1:])  # fmt: skip
    env = hosts.github_env()
    assert post(write(tmp_path, render_plan_markdown(first)), env).exit_code == 0
    result = post(write(tmp_path, render_plan_markdown(second)), env)
    assert result.exit_code == 0, result.output
    (comment,) = hosts.comments["7"]  # one comment, edited
    body = comment["body"]
    assert body.startswith(MARKER)
    assert "<details><summary>Earlier plans (1)</summary>" in body
    assert "Planned at 2026-01-02T03:04:05" in body  # the first plan's summary, collapsed
    assert body == snapshot  # the comment as GitHub renders it
    again = post(write(tmp_path, render_plan_markdown(second)), env)  # the same plan again
    assert "unchanged" in again.output
    assert hosts.comments["7"][0]["body"].count("Earlier plans (1)") == 1


def test_a_plan_too_long_for_one_comment_continues_and_shrinks_back(
    tmp_path: Path, hosts: FakeHosts
) -> None:
    env = hosts.github_env()
    long = render_plan_markdown(many(400), max_chars=250_000)
    assert len(long) > 65_536
    assert post(write(tmp_path, long), env).exit_code == 0
    thread = hosts.comments["7"]
    assert len(thread) > 1 and all(len(c["body"]) <= 65_536 for c in thread)
    assert thread[1]["body"].startswith("<!-- reconciler-plan part 2 -->")
    assert sum(c["body"].count("<details><summary>~ image set") for c in thread) == long.count(
        "<details><summary>~ image set"
    )  # split between sections, nothing lost
    assert post(write(tmp_path, render_plan_markdown(many(3))), env).exit_code == 0
    assert len(hosts.comments["7"]) == 1  # the continuation parts are gone


def test_split_cuts_only_between_sections() -> None:
    parts = split(render_plan_markdown(many(60), max_chars=250_000), 20_000)
    assert len(parts) > 1
    for part in parts:
        assert part.count("<details") == part.count("</details>")


def test_gitlab_keeps_one_note_and_leaves_other_peoples_notes_alone(
    tmp_path: Path, hosts: FakeHosts
) -> None:
    hosts.comments["mr3"] = [{"id": 1, "body": f"{MARKER}\nmine, says a person",
                              "author": {"username": "alice"}}]  # fmt: skip
    env = hosts.gitlab_env()
    assert post(write(tmp_path, render_plan_markdown(scenario())), env).exit_code == 0
    assert post(write(tmp_path, render_plan_markdown(many(2))), env).exit_code == 0
    alice, ours = hosts.comments["mr3"]
    assert alice["body"].endswith("mine, says a person")
    assert ours["body"].startswith(MARKER) and "Earlier plans (1)" in ours["body"]


def test_no_plan_says_so_instead_of_leaving_an_old_one_up(tmp_path: Path, hosts: FakeHosts) -> None:
    env = hosts.github_env()
    assert post(write(tmp_path, render_plan_markdown(scenario())), env).exit_code == 0
    assert post(tmp_path / "missing.md", env).exit_code == 0
    body = hosts.comments["7"][0]["body"]
    assert "No plan: validation or the plan failed" in body
    assert "https://github.example/imaging/manifests/actions/runs/42" in body


def test_a_failure_to_post_fails_the_job(tmp_path: Path, hosts: FakeHosts) -> None:
    hosts.refuse = 403
    result = post(write(tmp_path, render_plan_markdown(scenario())), hosts.github_env())
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith("Error: GET 127.0.0.1") and "403" in line
    assert "Resource not accessible by integration" in line
