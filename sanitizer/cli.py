"""`sanitize`: run stages by hand and review decisions. Heavy imports (torch, the pipeline)
happen inside commands so `sanitize --help` answers instantly."""

from __future__ import annotations

import sys

import click

from .layout import STAGE_NAMES


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Find backdoor-poisoned samples in an untrusted training set and train a clean model.

    The full pipeline runs with `dvc repro`; each stage also runs on its own."""


@main.command()
@click.argument("stage", type=click.Choice(STAGE_NAMES))
@click.option("--params", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
@click.option("--data", default="data", show_default=True, type=click.Path(file_okay=False), help="Data root.")
def run(stage: str, params: str, data: str) -> None:
    """Run one pipeline STAGE without DVC."""
    from .errors import SanitizerError
    from .pipeline import run_stage

    try:
        run_stage(stage, params, data)
    except SanitizerError as e:
        raise click.ClickException(f"stage {stage}: {e}") from None
    except KeyboardInterrupt:
        click.echo(f"stage {stage} interrupted; it left none of its outputs", err=True)
        sys.exit(130)


@main.command()
@click.option("--data", default="data", show_default=True, type=click.Path(file_okay=False), help="Data root.")
@click.option("--top", default=20, show_default=True, help="How many samples to list.")
@click.option("--class", "class_name", default=None, help="Only list samples with this given label.")
@click.option(
    "--by",
    default="suspicion",
    show_default=True,
    help="A signal of the method (listed in detect/suspicion.parquet; a wrong name lists them): "
    "suspicion ranks the flagged samples, any other signal samples of every decision.",
)
def inspect(data: str, top: int, class_name: str | None, by: str) -> None:
    """Per-class summary of the decisions and the most suspicious samples."""
    from .errors import SanitizerError
    from .review import render_review

    try:
        render_review(data, top, class_name, by)
    except SanitizerError as e:
        raise click.ClickException(str(e)) from None


@main.command()
@click.option("--data", default="data", show_default=True, type=click.Path(file_okay=False), help="Data root.")
@click.option("--out", required=True, type=click.Path(), help="Folder to write the sanitized training set to.")
@click.option("--format", "fmt", type=click.Choice(["imagefolder", "parquet"]), default="imagefolder", show_default=True)
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
def export(data: str, out: str, fmt: str, force: bool) -> None:
    """Write the sanitized training set: kept samples, relabelled ones under their new label,
    dropped ones left out, and changes.csv listing what changed."""
    from .errors import SanitizerError
    from .export import export as write_export

    try:
        done = write_export(data, out, fmt, force)
    except SanitizerError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"wrote {done['exported']} samples to {done['out']} ({done['format']}): {done['keep']} kept, {done['relabel']} relabelled, {done['drop']} dropped (see changes.csv)")


@main.command()
@click.option("--params", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
@click.option("--out", default="gallery.png", show_default=True, type=click.Path(dir_okay=False), help="PNG to write.")
@click.option("--attack", "attacks", multiple=True, help="Only this attack (repeatable); default: all.")
def gallery(params: str, out: str, attacks: tuple[str, ...]) -> None:
    """Write one PNG with every attack's train-time and test-time trigger on real images."""
    from .config import load_params
    from .errors import SanitizerError
    from .gallery import write_gallery

    try:
        path = write_gallery(load_params(params), out, list(attacks) or None)
    except SanitizerError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
