"""``reconciler show`` and ``reconciler export``: what is live, for people and as manifests."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.cli.common import open_session, phi_option
from reconciler.render.show import as_data, render_text
from reconciler.render.structured import dump


def _finders(func: click.decorators.FC) -> click.decorators.FC:
    for option in reversed((
        click.argument("image_sets", nargs=-1, metavar="[IMAGE_SET_ID]..."),
        click.option("--study", metavar="UID", help="Every image set of this StudyInstanceUID."),
        click.option("--datastore-id", metavar="ID",
                     help="The data store (default: datastoreId in reconciler.yaml)."),
    )):  # fmt: skip
        func = option(func)
    return func


@click.command()
@_finders
@click.option("--patient-id", metavar="ID", help="Every image set of this PatientID.")
@click.option("--accession", metavar="N", help="Every image set of this AccessionNumber.")
@click.option("--version-id", metavar="N", help="Show this version instead of the latest.")
@click.option(
    "--manifests", "manifest_paths", multiple=True, type=click.Path(exists=True, path_type=Path),
    help="Manifests whose owners to show (repeatable; default: manifests/ if present).",
)  # fmt: skip
@click.option(
    "-o", "--output", type=click.Choice(["text", "yaml", "json"]), default="text",
    show_default=True, help="text for people; yaml or json for tools.",
)  # fmt: skip
@phi_option
@click.pass_context
def show(
    ctx: click.Context,
    image_sets: tuple[str, ...],
    study: str | None,
    datastore_id: str | None,
    patient_id: str | None,
    accession: str | None,
    version_id: str | None,
    manifest_paths: tuple[Path, ...],
    output: str,
    show_phi: bool,
) -> int:
    """Show live image sets as a person reads them (like `terraform state show`).

    Version, state, primary or not, the Patient, Study and Series attributes, each
    series' instances summarised (how many, which attributes differ between them, the
    private tags with their VR), and which manifest owns each managed attribute. Reads
    only. PHI values are masked unless on a terminal or --show-phi.

    \b
    Examples:
      reconciler show 07293c9559d92802df5cd515a22a5149
      reconciler show --study 1.3.6.1.4.1.5962.1.2.1.20040119072730.12322 -o yaml
      reconciler show --patient-id 4MR1 --show-phi
    """
    with open_session(ctx, show_phi) as session:
        views = session.show(
            image_sets, study=study, patient_id=patient_id, accession=accession,
            version_id=version_id, datastore_id=datastore_id,
            manifests=manifest_paths or None,
        )  # fmt: skip
        data = [as_data(view, show_phi=session.show_phi) for view in views]
    if output == "text":
        click.echo("\n\n".join(render_text(item) for item in data))
    else:
        click.echo(dump(data, output))
    return 0


@click.command()
@_finders
@click.option(
    "--attribute", "attributes", multiple=True, metavar="LEVEL.KEYWORD",
    help="Attributes to state, e.g. Study.StudyDescription or Instance.00191010 "
    "(repeatable; default: every Patient and Study attribute that needs no force).",
)  # fmt: skip
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path),
    help="Write the manifests to this file instead of stdout (never overwrites).",
)  # fmt: skip
@phi_option
@click.pass_context
def export(
    ctx: click.Context,
    image_sets: tuple[str, ...],
    study: str | None,
    datastore_id: str | None,
    attributes: tuple[str, ...],
    out: Path | None,
    show_phi: bool,
) -> int:
    """Write manifests stating the live values (like `terraform import`).

    One manifest per image set, selected by StudyInstanceUID when the image set is its
    study's only primary image set, else by imageSetId. The output validates, and a plan
    of it is in sync. PHI attributes are left out (and counted on stderr) unless on a
    terminal or --show-phi: a masked value would be a wrong desired state.

    \b
    Examples:
      reconciler export 07293c9559d92802df5cd515a22a5149 > manifests/nm.yaml
      reconciler export --study 1.2.3 --attribute Study.StudyDescription --out m.yaml
    """
    with open_session(ctx, show_phi) as session:
        result = session.export(
            image_sets, study=study, attributes=attributes, datastore_id=datastore_id
        )
    for line in result.left_out:
        click.echo(f"Left out: {line}", err=True)
    text = "\n---\n".join(dump(document, "yaml") for document in result.documents) + "\n"
    if out is None:
        click.echo(text, nl=False)
        return 0
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        raise click.UsageError(f"{out} exists; export never overwrites a file") from None
    click.echo(f"Wrote {len(result.documents)} manifests to {out}", err=True)
    return 0
