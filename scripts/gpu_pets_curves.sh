#!/usr/bin/env bash
# PE-TS learning curves on the nominal half-cheetah, on one GPU, within a fixed wall-time window.
#
# Not part of CI (CI has no GPU). From the repository root, with learn2adapt importable by
# python3 and a CUDA build of torch:
#
#     bash scripts/gpu_pets_curves.sh OUT_DIR [SECONDS] [KEY=VALUE ...]
#
# Environment: SEEDS (PE-TS seeds, default "0 1 2"), WITH_MB (1: also the deterministic MB
# seed 0, the default; 0: not), CHECKS (1: the tests and the benchmark of step 1, the default;
# 0: skip them and plan with CUDA graphs, which an earlier lease checked), MPS (1: run the
# processes under CUDA's Multi-Process Service, the default, stopped again at the end; 0: not).
# KEY=VALUE options are passed to every run (--set), e.g. fit.warm_start=false.
#
# Why MPS: a plan is a few hundred small kernels (latency, not arithmetic, sets its time), and
# without MPS the GPU runs one process's kernels at a time. Two PE-TS runs without it took 62 ms
# a step each, one alone ~30; under MPS two 5-particle runs took 27-28 ms a step each
# (results/pets/nominal-gpu/README.md).
#
# 1. the CUDA-graph tests (tests/unit/test_cuda_graph.py) and `bench --only pets` on cuda;
# 2. the `pets` preset (CEM 5 x 400, H = 30, 1000-step episodes, 50k steps) on the nominal
#    cheetah, side by side for SECONDS (default 400): PE-TS (5 members, 20 particles) seeds
#    SEEDS and the deterministic MB (one model, one particle) seed 0, all on the one GPU, with
#    planner.cuda_graph where its tests passed. A run stopped by the window keeps every
#    finished iteration in metrics.csv (env_steps, return_mean, velocity_mean).
# OUT_DIR gets the logs and one .tar.gz per run directory.
set -uo pipefail
out=${1:?usage: gpu_pets_curves.sh OUT_DIR [SECONDS]}
window=${2:-400}
shift $(( $# < 2 ? $# : 2 ))
sets=()
for kv in "$@"; do sets+=(--set "$kv"); done
mkdir -p "$out" runs
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nproc; lscpu | grep -i "model name";
  lscpu | grep -o 'amx[a-z_0-9]*' | sort -u | tr '\n' ' '; echo;
  python3 -c "import torch, mujoco; print('torch', torch.__version__, 'mujoco', mujoco.__version__)"; } > "$out/machine.txt" 2>&1

graph=true
if [ "${CHECKS:-1}" = 1 ]; then
    python3 -m pytest -q -p no:cacheprovider tests/unit/test_cuda_graph.py > "$out/test_cuda_graph.log" 2>&1 \
        || graph=false
    timeout 90 python3 -m learn2adapt.cli bench --device cuda --only pets --json "$out/bench-pets-cuda.json" \
        > "$out/bench-pets-cuda.log" 2>&1
fi
echo "cuda graphs: $graph" | tee -a "$out/machine.txt"

mps=off
if [ "${MPS:-1}" = 1 ]; then
    if timeout 10 nvidia-cuda-mps-control -d > /dev/null 2>&1 \
        && timeout 60 python3 -c "import torch; torch.zeros(1, device='cuda')" > /dev/null 2>&1; then
        mps=on
    else  # a daemon that started but serves no client would fail every run: stop it
        echo quit | timeout 5 nvidia-cuda-mps-control > /dev/null 2>&1
    fi
fi
echo "mps: $mps" | tee -a "$out/machine.txt"

env_id=learn2adapt/HalfCheetahDisabledJoint-v0
common=(--env "$env_id" --preset pets --algo mb --quiet --set nominal=true --set eval.schedule=fixed
        --set device=cuda --set "planner.cuda_graph=$graph" "${sets[@]}")
pids=()
for seed in ${SEEDS:-0 1 2}; do
    timeout "$window" python3 -m learn2adapt.cli train "${common[@]}" --seed "$seed" \
        --run-dir "runs/pets-nominal-pe-s$seed" > "$out/train-pe-s$seed.log" 2>&1 &
    pids+=($!)
done
if [ "${WITH_MB:-1}" = 1 ]; then
    timeout "$window" python3 -m learn2adapt.cli train "${common[@]}" --seed 0 --set model.ensemble=1 \
        --set planner.particles=1 --run-dir runs/pets-nominal-mb-s0 > "$out/train-mb-s0.log" 2>&1 &
    pids+=($!)
fi
wait "${pids[@]}"
[ "$mps" = on ] && { echo quit | timeout 5 nvidia-cuda-mps-control > /dev/null 2>&1; }
for run in runs/pets-nominal-*; do
    tar czf "$out/$(basename "$run").tar.gz" --exclude=tb -C runs "$(basename "$run")"
done
for run in runs/pets-nominal-*; do echo "== $run"; cat "$run/metrics.csv" 2>/dev/null | cut -d, -f1-6,8-10; done
