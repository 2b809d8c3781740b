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
@click.option("--html", "html", default=None, type=click.Path(dir_okay=False), help="Write the review page (one HTML file with thumbnails, to open from disk) here instead.")
def inspect(data: str, top: int, class_name: str | None, by: str, html: str | None) -> None:
    """Per-class summary of the decisions and the most suspicious samples; with --html, a page
    to review them by eye and mark keep / drop / relabel."""
    from .errors import SanitizerError

    given = [f"--{p}" for p in ("top", "class", "by") if click.get_current_context().get_parameter_source(p.replace("class", "class_name")).name != "DEFAULT"]
    if html is not None and given:
        raise click.UsageError(f"{', '.join(given)}: for the terminal tables only; the --html page has its own filters")
    try:
        if html is None:
            from .review import render_review

            render_review(data, top, class_name, by)
            return
        from .review_page import write_page

        done = write_page(data, html)
    except SanitizerError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"wrote {done['out']} ({done['bytes'] / 1e6:.1f} MB): {done['flagged']} flagged or reviewed and {done['shown'] - done['flagged']} near-threshold samples of {done['total']}")


@main.command()
@click.argument("folder", default=".", type=click.Path(file_okay=False))
@click.option("--imagefolder", default=None, type=click.Path(), help="Your images: PATH/<class>/<image>, or PATH/train/... and PATH/test/...")
@click.option("--parquet", default=None, type=click.Path(), help="Your images as a Parquet table (a file, or a folder with train.parquet and test.parquet).")
@click.option("--force", is_flag=True, help="Replace an existing dvc.yaml, params.yaml or reviews.csv.")
def init(folder: str, imagefolder: str | None, parquet: str | None, force: bool) -> None:
    """Set up FOLDER (default: here) to sanitize your own images with `dvc repro`: a dvc.yaml
    that calls this installed sanitizer, a params.yaml pointing at the images, an empty
    reviews.csv; git and DVC initialised if they are not yet."""
    from .errors import SanitizerError
    from .scaffold import init as scaffold

    given = [(s, p) for s, p in (("imagefolder", imagefolder), ("parquet", parquet)) if p is not None]
    if len(given) != 1:
        raise click.UsageError("give your data with exactly one of --imagefolder PATH or --parquet PATH")
    try:
        done = scaffold(folder, *given[0], force)
    except SanitizerError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"in {folder}: {', '.join(done)}. Next: `dvc repro`, then `sanitize inspect --html review.html`.")


@main.command()
@click.argument("sample_ids", nargs=-1)
@click.option("--keep", is_flag=True, help="Keep the samples with their given label.")
@click.option("--drop", is_flag=True, help="Leave the samples out of training.")
@click.option("--relabel", metavar="CLASS", default=None, help="Train on the samples as class CLASS.")
@click.option("--clear", is_flag=True, help="Remove your review: the method decides again.")
@click.option("--apply", "apply_file", default=None, type=click.Path(dir_okay=False, exists=True), help="Merge a reviews CSV (the HTML page's download) instead.")
@click.option("--who", default=None, help="Reviewer name (default: git's user.name, else $USER).")
@click.option("--note", default=None, help="Why, in a few words.")
@click.option("--data", default="data", show_default=True, type=click.Path(file_okay=False), help="Data root; reviews.csv sits beside it.")
def review(sample_ids, keep, drop, relabel, clear, apply_file, who, note, data) -> None:
    """Overrule the method on SAMPLE_IDS: your word wins at the next `dvc repro`, which re-runs
    only train_clean, relabel and evaluate. Recorded in reviews.csv (commit it)."""
    from .errors import SanitizerError
    from .reviews import Review, now, read, record

    chosen = [name for name, on in (("keep", keep), ("drop", drop), ("relabel", relabel is not None), ("clear", clear)) if on]
    if apply_file is not None:
        if chosen or sample_ids or who is not None or note is not None:
            raise click.UsageError("--apply takes everything from the file: give no SAMPLE_IDS, decision, --who or --note with it")
    elif len(chosen) != 1 or not sample_ids:
        raise click.UsageError("give SAMPLE_IDS and exactly one of --keep, --drop, --relabel CLASS, --clear; or --apply FILE")
    elif chosen == ["clear"] and (who is not None or note is not None):
        raise click.UsageError("--clear removes reviews: --who and --note have nothing to go on")
    try:
        if apply_file is not None:
            path, size, _ = record(data, read(apply_file), where=apply_file)
            done = f"merged {apply_file}"
        elif chosen == ["clear"]:
            path, size, cleared = record(data, [], clear=list(sample_ids))
            done = f"cleared {cleared} review(s)"
        else:
            by = who if who is not None else _reviewer()
            path, size, _ = record(data, [Review(s, chosen[0], relabel or "", by, now(), note or "") for s in sample_ids])
            done = f"{chosen[0]}: {len(sample_ids)} sample(s)"
    except SanitizerError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"{done}; {path} holds {size} review(s). `dvc repro` applies them.")


def _reviewer() -> str:
    import getpass
    import subprocess

    try:
        name = subprocess.run(["git", "config", "user.name"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        name = ""
    return name or getpass.getuser()


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
