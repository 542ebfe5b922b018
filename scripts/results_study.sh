#!/usr/bin/env bash
# The CPU-scale reproduction study of docs/results_superseded.md. Every step is resumable and cached:
# re-running the script (or running it with more SEEDS / BUDGETS) only does missing work.
# JOBS=2 runs two sweep runs at a time.
#   SEEDS=0,1,2 BUDGETS=2,4,8,16,32 STRONG_BUDGETS=2,8,32 JOBS=2 scripts/results_study.sh
set -euo pipefail
cd "$(dirname "$0")/.."
LAOM=${LAOM:-.venv/bin/laom}
OUT=${OUT:-runs/study}
SEEDS=${SEEDS:-0}
BUDGETS=${BUDGETS:-2,8,32}
JOBS=${JOBS:-1}
STRONG_BUDGETS=${STRONG_BUDGETS:-$BUDGETS}  # budgets of the strong-supervision variant
D=$OUT/data
mkdir -p "$D"

# Datasets: 100 expert trajectories (built-in SAC expert) with the paper's distractors,
# 10 held-out trajectories on novel videos, and the same without distractors.
$LAOM collect --task cheetah-run --episodes 100 --workers 2 --seed 0 --out $D/cheetah-run-train.hdf5
$LAOM collect --task cheetah-run --episodes 10 --split eval --workers 2 --seed 1 --out $D/cheetah-run-eval.hdf5
$LAOM collect --task cheetah-run --difficulty vanilla --episodes 100 --workers 2 --seed 0 \
  --out $D/cheetah-run-vanilla-train.hdf5
$LAOM collect --task cheetah-run --difficulty vanilla --episodes 10 --split eval --workers 2 --seed 1 \
  --out $D/cheetah-run-vanilla-eval.hdf5

# LAPO and LAOM without distractors: latent action quality (linear probe) only.
IFS=, read -ra seeds <<< "$SEEDS"
for seed in "${seeds[@]}"; do
  for method in lapo laom; do
    $LAOM train lam --method $method --config cpu --epochs 1 --seed "$seed" --progress false \
      --data $D/cheetah-run-vanilla-train.hdf5 --eval-data $D/cheetah-run-vanilla-eval.hdf5 \
      --out $OUT/vanilla/$method-s$seed
  done
done

# All five methods (+ BC on every action, the normaliser) with distractors.
$LAOM sweep --tasks cheetah-run --methods lapo,laom,laom-labels,bc-full,bc,idm \
  --labeled "$BUDGETS" --seeds "$SEEDS" --data "$D/{task}-train.hdf5" --eval-data "$D/{task}-eval.hdf5" \
  --out $OUT/sweep --preset cpu --episodes 5 --workers 2 --epochs 1 --no-progress --jobs "$JOBS"

# LAOM+supervision with supervision strong enough to shape the latents at this scale
# (label weight 1.0, single-step targets, no augmentation): its own sweep on the same
# labelled subsets, divided by the main sweep's normaliser, reported beside the others.
$LAOM sweep --tasks cheetah-run --methods laom-labels --labeled "$STRONG_BUDGETS" --seeds "$SEEDS" \
  --data "$D/{task}-train.hdf5" --eval-data "$D/{task}-eval.hdf5" --out $OUT/sweep-strong \
  --normalizer $OUT/sweep --preset cpu --episodes 5 --workers 2 --epochs 1 --no-progress --jobs "$JOBS" \
  --lam.label_coef 1.0 --lam.future_offset 1 --lam.use_aug false
$LAOM report $OUT/sweep strong-sup=$OUT/sweep-strong --out $OUT/report --paper
