#!/usr/bin/env bash
# The five-policy-epoch runs of docs/results_superseded.md (seed 0, 32 labelled trajectories), on
# the study's datasets and stage cache: run scripts/results_study.sh first. The LAMs are
# reused from the cache; only the policy stages (and the IDM baseline) train again.
set -euo pipefail
cd "$(dirname "$0")/.."
LAOM=${LAOM:-.venv/bin/laom}
OUT=${OUT:-runs/study}
D=$OUT/data
EPOCHS=${EPOCHS:-5}
common=(--data "$D/cheetah-run-train.hdf5" --eval-data "$D/cheetah-run-eval.hdf5" --preset cpu
        --episodes 5 --eval-seed 0 --workers 2 --no-progress --seed 0)
$LAOM pipeline --method bc-full "${common[@]}" --out $OUT/sweep/cache --epochs "$EPOCHS"
$LAOM pipeline --method idm "${common[@]}" --labeled $OUT/sweep/labeled/cheetah-run-32-s0.hdf5 \
  --out $OUT/sweep/cache --epochs "$EPOCHS"
$LAOM pipeline --method lapo "${common[@]}" --labeled $OUT/sweep/labeled/cheetah-run-32-s0.hdf5 \
  --out $OUT/sweep/cache --epochs 1 --bc.epochs "$EPOCHS"
$LAOM pipeline --method laom-labels "${common[@]}" --labeled $OUT/sweep-strong/labeled/cheetah-run-32-s0.hdf5 \
  --out $OUT/sweep-strong/cache --epochs 1 --bc.epochs "$EPOCHS" \
  --lam.label_coef 1.0 --lam.future_offset 1 --lam.use_aug false
