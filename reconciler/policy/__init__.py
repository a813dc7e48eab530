"""Policy checks on plans: the project's rules (:mod:`reconciler.manifest.policies`)
evaluated against a plan, each failure a :class:`~reconciler.engine.context.Finding`.

The session evaluates them on every plan and before every apply (a fresh plan, a saved
one, a reviewed one): a plan that fails a mandatory rule exits 1, and apply refuses it
before anything is sent. Rules read only the plan and a few facts the session supplies
(how many patients the plan's studies belong to, who approved): the same verdict on a
laptop and in CI.
"""

from __future__ import annotations

from reconciler.policy.evaluate import PolicyFailed, evaluate, refuse_failures
from reconciler.policy.rules import Facts

__all__ = ["Facts", "PolicyFailed", "evaluate", "refuse_failures"]
