#!/usr/bin/env bash
# The GPU benchmark, prepared to run as it is when a GPU machine is lent: CIFAR-10 (all 50,000
# train images of the shared cifar10-jpeg Parquet), ResNet-18, BadNets 5 %, the whole pipeline
# from scratch, then its metrics and each stage's wall time.
# Goals (issue 19): <= 10 min end to end on one H200, no-defense ACC >= 93 %.
#
#   bash benchmarks/gpu.sh                            # the full run -> benchmarks/results/cifar10-badnets-gpu.json
#   OUT=/tmp/smoke bash benchmarks/gpu.sh --set data.limit=500 --set train.epochs=1
#                                                     # a smoke run on a subset, on any machine
# Extra arguments go to benchmarks/run_pipeline.py (--set SECTION.KEY=VALUE, --workdir DIR).
#
# Python: the project's .venv when there is one; else a python3 that already holds the
# project's packages (the GPU machine's image has torch but no internet: polars travels there
# as a wheel); else scripts/setup makes the .venv. Without DVC installed, the stages run in
# dvc.yaml's order, each by the command dvc.yaml gives it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then
  . .venv/bin/activate
elif python3 -c 'import torch, torchvision, polars, pyarrow, click, rich, yaml, PIL' 2>/dev/null; then
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
  if ! command -v python >/dev/null; then  # dvc.yaml's commands call `python`
    # A script, not a symlink: a venv's python3 reached through a symlink elsewhere loses the
    # venv's packages (the GPU image's python3 is /opt/torch/.venv/bin/python3).
    shim=$(mktemp -d); printf '#!/bin/sh\nexec python3 "$@"\n' > "$shim/python"; chmod +x "$shim/python"; export PATH="$shim:$PATH"
  fi
else
  scripts/setup && . .venv/bin/activate
fi
runner=()
command -v dvc >/dev/null || { runner=(--without-dvc); echo "DVC not installed: running dvc.yaml's stages in order"; }
python -c 'import torch; print("device:", torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU only (a smoke run, not the benchmark)")'
exec python benchmarks/run_pipeline.py cifar10-badnets-gpu --out "${OUT:-benchmarks/results}" "${runner[@]}" "$@"
