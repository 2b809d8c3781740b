"""Thin entry points, one per DVC stage: `python -m stages.<name> [--params P] [--data D]`."""

from __future__ import annotations

import argparse
import sys


def main(name: str) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m stages.{name}")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data", default="data", help="data root the stages read and write")
    args = parser.parse_args()
    from sanitizer.errors import SanitizerError
    from sanitizer.pipeline import run_stage

    try:
        run_stage(name, args.params, args.data)
    except SanitizerError as e:
        print(f"error in stage {name}: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"stage {name} interrupted; it left none of its outputs", file=sys.stderr)
        sys.exit(130)
