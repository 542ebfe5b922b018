#!/usr/bin/env bash
# The acting-policy experiments of docs/acting_policies.md: BC on every action (BC-full)
# with the CPU recipe, its learning curve (return and offline action MSE every 2500
# updates), a 25-episode evaluation, and the demo-sized run. Resumable: re-run to continue.
set -euo pipefail
cd "$(dirname "$0")/.."
LAOM=${LAOM:-.venv/bin/laom}
OUT=${OUT:-runs/acting}
D=${DATA:-runs/data}
mkdir -p "$D" "$OUT"
export MUJOCO_GL=${MUJOCO_GL:-egl}

# The study's data: 100 expert trajectories with scale_easy_video_hard distractors and 10
# held-out trajectories on novel videos (built-in SAC expert).
$LAOM collect --task cheetah-run --episodes 100 --workers 2 --seed 0 --out $D/cheetah-run-train.hdf5
$LAOM collect --task cheetah-run --episodes 10 --split eval --workers 2 --seed 1 --out $D/cheetah-run-eval.hdf5

# BC-full, CPU recipe (flattened map + MLP head, DrQ shift +-4 px), 20,000 updates of 64.
$LAOM train bc-baseline --config cpu --data $D/cheetah-run-train.hdf5 --eval-data $D/cheetah-run-eval.hdf5 \
  --total_updates 20000 --curve_every 2500 --curve_episodes 5 --progress false --out $OUT/bc-full
$LAOM evaluate --policy $OUT/bc-full --episodes 25 --workers 2 --no-progress

# The demo's size: the first 20 of the same trajectories, a higher rate, 2000 updates.
$LAOM train bc-baseline --config cpu --data $D/cheetah-run-train.hdf5 --eval-data $D/cheetah-run-eval.hdf5 \
  --max_trajectories 20 --learning_rate 1e-3 --total_updates 2000 --curve_every 500 --curve_episodes 5 \
  --progress false --out $OUT/bc-full-20traj-lr1e-3

# One change against bc-full: act with an exponential moving average of the weights over
# 10% of the run (docs/acting_policies.md, "Acting with an average of the weights").
$LAOM train bc-baseline --config cpu --data $D/cheetah-run-train.hdf5 --eval-data $D/cheetah-run-eval.hdf5 \
  --total_updates 20000 --curve_every 2500 --curve_episodes 5 --policy_ema 0.1 --progress false \
  --out $OUT/bc-full-ema0.1
$LAOM evaluate --policy $OUT/bc-full-ema0.1 --episodes 25 --workers 2 --no-progress
