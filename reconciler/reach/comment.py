"""One living plan comment per pull request (merge request).

The comment is found by its first line, ``<!-- reconciler-plan -->``, among the ones
the job's own identity wrote, and edited in place; when the plan is longer than the
host allows in one comment (GitHub: 65,536 characters), the rest goes into
continuation comments (``<!-- reconciler-plan part 2 -->`` …), split between image set
sections, and extra parts of a longer earlier plan are deleted. The summary of every
earlier plan stays, collapsed, under the current one ("Earlier plans"), newest first,
so a reviewer sees what changed between pushes without a wall of comments.

When there is no plan (validation or the plan failed before rendering one), the comment
says so and points at the job, so an older plan never stays up looking current.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reconciler.errors import ReconcilerError
from reconciler.reach.hosts import Comment, Host
from reconciler.render.markdown import MARKER, SUMMARY_END, SUMMARY_START

PART = "<!-- reconciler-plan part {n} -->"
_PART = re.compile(r"<!-- reconciler-plan part (\d+) -->")
EARLIER_START = "<!-- reconciler:earlier -->"
EARLIER_END = "<!-- /reconciler:earlier -->"
KEEP_EARLIER = 10  # summaries of earlier plans kept under the current one
MAX_PARTS = 10  # comments one plan may take; past that the plan was cut already
_ROOM = 500  # characters kept free in each part for its head and the "continued" line


@dataclass(frozen=True)
class Posted:
    created: int
    updated: int
    deleted: int


def failed_body(job: str | None) -> str:
    where = f" See {job}." if job else " See the CI job's log."
    return (
        f"{MARKER}\n## reconciler plan\n\n{SUMMARY_START}\n**No plan: validation or the plan "
        f"failed before one was made.**{where}\n{SUMMARY_END}"
    )


def _between(text: str, start: str, end: str) -> str | None:
    if start not in text or end not in text:
        return None
    inner = text.split(start, 1)[1].split(end, 1)[0]
    return inner.strip("\n")


def earlier(previous: str | None) -> list[str]:
    """The summaries a living comment keeps: the previous current one first, then the
    ones it kept, at most :data:`KEEP_EARLIER`."""
    if previous is None:
        return []
    found = []
    current = _between(previous, SUMMARY_START, SUMMARY_END)
    if current:
        found.append(current)
    kept = _between(previous, EARLIER_START, EARLIER_END) or ""
    found += [block.strip("\n") for block in kept.split("\n<hr>\n") if block.strip()]
    return found[:KEEP_EARLIER]


def _earlier_section(blocks: list[str]) -> str:
    if not blocks:
        return ""
    inner = "\n<hr>\n".join(blocks)
    return (
        f"<details><summary>Earlier plans ({len(blocks)})</summary>\n\n{EARLIER_START}\n"
        f"{inner}\n{EARLIER_END}\n\n</details>"
    )


def _same(one: str, other: str | None) -> bool:
    """Two summaries that differ only in when they were made."""
    untimed = re.compile(r"^_(Planned|Checked) at .*_$", re.M)
    return other is not None and untimed.sub("", one) == untimed.sub("", other)


def compose(markdown: str, previous: str | None) -> str:
    """The new comment: ``markdown`` with the earlier plans' summaries collapsed right
    after its own summary (a re-run that planned the same is not kept twice)."""
    blocks = earlier(previous)
    if blocks and _same(blocks[0], _between(markdown, SUMMARY_START, SUMMARY_END)):
        blocks = blocks[1:]
    section = _earlier_section(blocks)
    if not section:
        return markdown
    if SUMMARY_END in markdown:
        head, rest = markdown.split(SUMMARY_END, 1)
        return f"{head}{SUMMARY_END}\n\n{section}{rest}"
    return f"{markdown}\n\n{section}"


def split(body: str, limit: int) -> list[str]:
    """``body`` in parts of at most ``limit`` characters, cut only before a line that
    starts an image set section (``<details``); continuation parts carry their marker."""
    if len(body) <= limit:
        return [body]
    lines = body.split("\n")
    pieces: list[str] = []
    current: list[str] = []
    for line in lines:
        if line.startswith("<details") and current and "Earlier plans" not in line:
            pieces.append("\n".join(current))
            current = []
        current.append(line)
    pieces.append("\n".join(current))
    budget = limit - _ROOM
    parts: list[str] = [""]
    for piece in pieces:
        if len(piece) > budget:
            piece = piece[: budget - 40] + "\n\n… (this section is too long to show)"
        if parts[-1] and len(parts[-1]) + len(piece) + 1 > budget:
            parts.append("")
        parts[-1] = f"{parts[-1]}\n{piece}" if parts[-1] else piece
    total = len(parts)
    if total > MAX_PARTS:
        raise ReconcilerError(
            f"the plan needs {total} comments of {limit} characters; render it with a lower "
            "limit (it is cut at 250,000 characters) or read plan.html"
        )
    for n in range(1, total):
        parts[n] = (
            f"{PART.format(n=n + 1)}\n_reconciler plan, continued ({n + 1}/{total})_\n\n{parts[n]}"
        )
    if total > 1:
        parts[0] += f"\n\n_Continued in the next {total - 1} comment{'s' if total > 2 else ''}._"
    return parts


def post(host: Host, markdown: str | None, *, job: str | None = None) -> Posted:
    """Create or update the living comment (and its continuation parts)."""
    body = markdown if markdown and markdown.startswith(MARKER) else failed_body(job)
    mine = host.comments()
    main = next((c for c in mine if c.body.startswith(MARKER)), None)
    parts_seen: dict[int, Comment] = {}
    for comment in mine:
        found = _PART.match(comment.body)
        if found:
            parts_seen.setdefault(int(found.group(1)), comment)
    parts = split(compose(body, main.body if main else None), host.comment_limit)
    created = updated = deleted = 0
    for n, text in enumerate(parts, start=1):
        existing = main if n == 1 else parts_seen.get(n)
        if existing is None:
            host.create_comment(text)
            created += 1
        elif existing.body != text:
            host.update_comment(existing, text)
            updated += 1
    for n, comment in sorted(parts_seen.items()):
        if n > len(parts):
            host.delete_comment(comment)
            deleted += 1
    return Posted(created, updated, deleted)
