"""How a plan reads: terminal text (``terraform plan``-like) and markdown for PRs/CI.

The JSON form lives with the saved plan (:mod:`reconciler.engine.planfile`): it is the
same document. Renderers only read a :class:`~reconciler.engine.plan.Plan`.
"""

from __future__ import annotations

from reconciler.render.markdown import render_plan_markdown
from reconciler.render.text import render_plan_text

__all__ = ["render_plan_markdown", "render_plan_text"]
