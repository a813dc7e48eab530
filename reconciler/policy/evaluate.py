"""Evaluate the project's rules against a plan; refuse a plan that fails a mandatory one."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from reconciler.engine.context import Finding
from reconciler.engine.plan import Plan
from reconciler.errors import ReconcilerError
from reconciler.manifest.policies import PolicySet
from reconciler.policy.rules import CHECKS, Facts

MAX_SHOWN = 20


class PolicyFailed(ReconcilerError):
    """The plan fails a mandatory policy rule: nothing was applied."""


def evaluate(policies: PolicySet, plan: Plan, facts: Facts | None = None) -> tuple[Finding, ...]:
    """Every finding of every rule of ``policies`` on ``plan``, in declaration order."""
    facts = facts or Facts()
    findings: list[Finding] = []
    for rule in policies.rules:
        findings += CHECKS[rule.name](rule, plan, facts, policies.root.resolve())
    return tuple(findings)


def refuse_failures(findings: Sequence[Finding], notify: Callable[[str], None]) -> None:
    """Each finding as one line through ``notify``; raise :class:`PolicyFailed` when a
    mandatory rule failed (the caller has sent nothing yet)."""
    for finding in findings:
        notify(str(finding))
    failed = [f for f in findings if f.mandatory]
    if not failed:
        return
    rules = sorted({f.rule for f in failed})
    checks = "policy check" if len(failed) == 1 else "policy checks"
    raise PolicyFailed(
        f"the plan fails {len(failed)} mandatory {checks} ({', '.join(rules)}), so nothing "
        "was applied: fix the manifests, or change the policy in reconciler.yaml or "
        "policies/ through review"
    )
