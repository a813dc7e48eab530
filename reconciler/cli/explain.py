"""``reconciler explain``: where an attribute lives and what changing it takes."""

from __future__ import annotations

import click

from reconciler.dicom.explain import explain as explain_term
from reconciler.render.explain import render_explanation
from reconciler.render.structured import dump


@click.command()
@click.argument("term", metavar="KEYWORD|TAG")
@click.option(
    "-o", "--output", type=click.Choice(["text", "json", "yaml"]), default="text",
    show_default=True, help="text for people; json or yaml for tools.",
)  # fmt: skip
def explain(term: str, output: str) -> int:
    """Explain a DICOM attribute: tag, VR, VM, its level in HealthImaging, whether
    changing it needs force, whether it is PHI, whether it can change on a primary
    image set, and an example value.

    Everything comes from pydicom's data dictionary, HealthImaging's level table and
    the project's rules; the example is the first fitting value in pydicom's sample
    files. Needs no AWS access.

    \b
    Examples:
      reconciler explain PatientName
      reconciler explain 0020000D
      reconciler explain "(0008,103E)" -o json
    """
    item = explain_term(term)
    if output == "text":
        click.echo(render_explanation(item))
    else:
        click.echo(dump(item.as_dict(), output))
    return 0
