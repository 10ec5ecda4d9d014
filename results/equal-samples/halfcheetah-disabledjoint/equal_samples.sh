#!/usr/bin/env bash
# Equal-samples study (issue 37): train one (algo, seed) to 12k, 24k, 36k, 48k steps by
# extending the same run (`train --resume --set iterations=N`), keep a copy of the run at each
# step count, and evaluate every copy under both schedules with RS (the preset's) and CEM.
# usage: equal_samples.sh OUT ALGO SEED [ENV]
set -uo pipefail
OUT=$1; ALGO=$2; SEED=$3; ENV=${4:-learn2adapt/HalfCheetahDisabledJoint-v0}
L2A=${L2A:-learn2adapt}  # this study ran a separate checkout at 8babbc1
export OMP_NUM_THREADS=1
run=$OUT/runs/$ALGO-s$SEED
mkdir -p "$OUT/runs" "$OUT/snapshots"
if [ "$ALGO" = sac ]; then key=baseline.steps; stages="12000 24000 36000 48000"; else key=iterations; stages="4 10 16 22"; fi
for N in $stages; do
  if [ "$ALGO" = sac ]; then k=$((N / 1000))k; else k=$(((4000 + 2000 * N) / 1000))k; fi
  snap=$OUT/snapshots/$ALGO-s$SEED-$k
  if [ ! -f "$snap/DONE" ]; then
    if [ -f "$run/checkpoint.pt" ]; then
      $L2A train --resume "$run" --set $key=$N --quiet || exit 1
    else
      extra=(); [ "$ALGO" = sac ] && extra=(--set baseline.checkpoint_every=6000)
      $L2A train --algo "$ALGO" --env "$ENV" --preset medium --seed "$SEED" --run-dir "$run" --set $key=$N "${extra[@]}" --quiet || exit 1
    fi
    rm -rf "$snap.tmp"; cp -r "$run" "$snap.tmp"; rm -f "$snap.tmp/.lock"; rm -rf "$snap.tmp/tb"; mv "$snap.tmp" "$snap"
  fi
  for sched in fixed paper-cheetah-switch; do
    grep -q "\"$sched\"" "$snap/eval.json" 2>/dev/null || $L2A eval "$snap" --schedule "$sched" --quiet || exit 1
    if [ "$ALGO" != sac ]; then
      f=$snap/eval-cem-$sched.json
      [ -f "$f" ] || $L2A eval "$snap" --schedule "$sched" --set planner.name=cem --output "$f" --quiet || exit 1
    fi
  done
  echo "$(date +%T) $ALGO s$SEED $k done"
done
