#!/usr/bin/env bash
# AntCrippledLeg at the budget where the intact ant moves (~36k steps, README beside this file):
# GrBAL, ReBAL and MB planned by CEM, 3 seeds, `fixed` and the mid-episode crippling, on one GPU.
# Projected 6-12 h on the 2-core CPU; on a GPU the simulator sets the pace (issue 42 for the
# launch-bound parts). Needs learn2adapt installed with a CUDA build of torch.
# Usage: bash gpu.sh OUT [WORKERS]   (resumable: rerun the same command on the same OUT)
set -euo pipefail
out=${1:?usage: bash gpu.sh OUT [WORKERS]}
workers=${2:-3}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
learn2adapt compare --env learn2adapt/AntCrippledLeg-v0 --preset medium --algos grbal,rebal,mb --seeds 3 \
    --set device=cuda --set planner.name=cem --set iterations=44 \
    --schedule fixed --schedule paper-ant-crippled --at-steps 24000,36000 \
    --out "$out" --workers "$workers"
echo "report: $out/report/report.md"
