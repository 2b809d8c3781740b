"""Stage `identify`: flag the samples the enhanced model fits but the clean reference rejects."""

import polars as pl

from stages import main


def run(cfg, paths) -> None:
    from sanitizer.methods.advrbd import identify
    from sanitizer.manifest import read_manifest, write_manifest

    rounds = read_manifest(paths.rounds, ["sample_id", "consistency"])
    suspected = identify(rounds["consistency"].to_numpy(), cfg["identify"].threshold)
    df = rounds.select("sample_id", "consistency").with_columns(pl.Series("suspected", suspected))
    write_manifest(df, paths.identify, "identify")


if __name__ == "__main__":
    main("identify")
