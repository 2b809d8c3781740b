#!/usr/bin/env bash
# The GPU benchmark, prepared to run as it is when a GPU machine is lent: CIFAR-10 (all 50,000
# train images of ../shared/datasets/cifar10-jpeg), ResNet-18, BadNets 5 %, the whole pipeline
# (`dvc repro` from scratch), then its metrics and each stage's wall time.
# Goals (issue 19): <= 10 min end to end on one H200, no-defense ACC >= 93 %.
#
#   bash benchmarks/gpu.sh                            # the full run -> benchmarks/results/cifar10-badnets-gpu.json
#   OUT=/tmp/smoke bash benchmarks/gpu.sh --set data.limit=500 --set train.epochs=1
#                                                     # a smoke run on a subset, on any machine
# Extra arguments go to benchmarks/run_pipeline.py (--set SECTION.KEY=VALUE, --workdir DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || scripts/setup
. .venv/bin/activate
python -c 'import torch; print("device:", torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU only (a smoke run, not the benchmark)")'
exec python benchmarks/run_pipeline.py cifar10-badnets-gpu --out "${OUT:-benchmarks/results}" "$@"
