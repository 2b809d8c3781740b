"""Stage `identify`: flag the samples the enhanced model fits but the clean reference rejects,
and those partition barred from D_s."""

import polars as pl

from stages import main


def run(cfg, paths) -> None:
    from sanitizer.methods.advrbd import identify
    from sanitizer.manifest import aligned, read_manifest, write_manifest

    rounds = read_manifest(paths.rounds, ["sample_id", "consistency"])
    barred = aligned(read_manifest(paths.partition, ["sample_id", "subset"]), rounds["sample_id"].to_numpy(), paths.partition)["subset"].to_numpy() == "barred"
    suspected = identify(rounds["consistency"].to_numpy(), cfg["identify"].threshold, barred)
    df = rounds.select("sample_id", "consistency").with_columns(pl.Series("suspected", suspected))
    write_manifest(df, paths.identify, "identify")


if __name__ == "__main__":
    main("identify")
