#!/usr/bin/env bash
# LAOM+supervision's label weight at the demo's scale (laom/configs/demo: 20 trajectories,
# latent 256, 1 epoch = 312 updates, 4 labelled trajectories), one seed: the probe on
# held-out novel videos and the release's online probe, against LAOM without labels.
# Needs the demo's data (`laom demo` writes it under demo_out/). Resumable.
set -euo pipefail
cd "$(dirname "$0")/.."
LAOM=${LAOM:-.venv/bin/laom}
DEMO=${DEMO:-demo_out}
OUT=${OUT:-runs/label_coef_demo}
export MUJOCO_GL=${MUJOCO_GL:-egl}
for coef in ${COEFS:-0.0354 0.3 1.0 3.0}; do
  $LAOM train lam --method laom-labels --config demo --data $DEMO/data/cheetah-run-train.hdf5 \
    --labeled $DEMO/sweep/labeled/cheetah-run-4-s0.hdf5 --eval-data $DEMO/data/cheetah-run-eval.hdf5 \
    --label_coef $coef --progress false --out $OUT/laom-labels-c$coef
done
