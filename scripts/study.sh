#!/usr/bin/env bash
# The reproduction study (docs/results.md; its plan and costs: docs/study_plan.md), with the
# presets of docs/lam_probes.md and the acting-policy recipe of docs/acting_policies.md.
# Every step is resumable and cached: re-run the same command after an interruption, or
# with more SEEDS / BUDGETS / TASKS, and only the missing work is done.
#
#   scripts/study.sh                          # the study with distractors: both tasks, seeds 0-2
#   DIFFICULTY=vanilla scripts/study.sh       # the same without distractors
#   PLAN=1 scripts/study.sh                   # print what would train and its cost, then stop
#   METHODS=bc-full,bc,lapo-nofsq scripts/study.sh   # a part of the grid (it only grows)
#   FIRST=laom METHODS=...,laom scripts/study.sh    # LAOM's runs before the others'
#   UNTIL=lam SEEDS=1,2 METHODS=lapo,lapo-nofsq,laom BUDGETS=2 scripts/study.sh
#                                             # probe-only seeds (each LAM alone) in sweep-DIFFICULTY-until-lam
# Each ends with the whole study's report ($OUT/report) from every records folder there is.
# A sweep only grows: once its records hold a task or seed, a command that leaves it out is
# refused, so the defaults are the whole grid the records have reached (the first tranche
# was TASKS=cheetah-run SEEDS=0).
#
# Data: the built-in SAC experts (not the release's PPO experts, on whose data BC-full
# reaches 19-26% of the expert at 10,000 updates against 58-69% on ours; the normaliser must
# work: docs/acting_policies.md). EXPERT=release uses ../shared/reference-experts/<task>.
# N trajectories to train on (500: 128 labelled are 26% of it; the paper's 128 of 5,000 are
# 2.6%, docs/study_plan.md says why not more) and 50 held-out ones on novel videos, both
# recording the distractors' parameters for the distractor probes.
set -euo pipefail
cd "$(dirname "$0")/.."
LAOM=${LAOM:-.venv/bin/laom}
OUT=${OUT:-runs/study}
TASKS=${TASKS:-cheetah-run,walker-run}
SEEDS=${SEEDS:-0,1,2}
BUDGETS=${BUDGETS:-2,8,32,128}
METHODS=${METHODS:-bc-full,bc,idm,lapo,lapo-nofsq,laom,laom-labels}
DIFFICULTY=${DIFFICULTY:-scale_easy_video_hard}
N=${N:-500}
HELD_OUT=${HELD_OUT:-50}
JOBS=${JOBS:-2}  # two runs at a time, one thread each: more samples/s than one run on both cores
EXPERT=${EXPERT:-builtin}
RECORDS=${RECORDS:-docs/results/records}
D=$OUT/data/$DIFFICULTY
mkdir -p "$D"

IFS=, read -ra tasks <<< "$TASKS"
for task in "${tasks[@]}"; do
  expert=(); [ "$EXPERT" = release ] && expert=(--expert ../shared/reference-experts/$task)
  $LAOM collect --task "$task" "${expert[@]}" --difficulty "$DIFFICULTY" --episodes "$N" --workers 2 --seed 0 \
    --quiet --out "$D/$task-train.hdf5"
  $LAOM collect --task "$task" "${expert[@]}" --difficulty "$DIFFICULTY" --episodes "$HELD_OUT" --split eval \
    --workers 2 --seed 1 --quiet --out "$D/$task-eval.hdf5"
done

# One sweep per distractor setting, the CPU preset with three stated changes
# (docs/study_plan.md):
# - the stages that learn from the video (the LAMs, latent BC, the IDM baseline's
#   pseudo-labelling and its policy) read its first 100 trajectories, the CPU preset's
#   100k-transition reference run: a LAM trains 100k samples at this preset either way,
#   and 500 would cost 5x the latent labelling and an 8 GB latent cache per LAM;
# - the labelled subsets are drawn from all N, BC-full trains on all N, and
#   --epoch_transitions 100000 keeps its schedule (and BC's on 128 trajectories) what the
#   preset gives on the reference file;
# - every acting policy trains 8 reference epochs (12,500 updates for BC-full) instead of
#   13: its return curve is flat from there (docs/acting_policies.md), and the study's
#   budget is spent on acting policies first.
# The LAM's probe curve is taken every 390 updates (a quarter of the run), and BC's,
# BC-full's and the IDM baseline's policies get a return curve (5 episodes every 2,500
# updates). Latent BC acts through a decoder per budget, so it keeps its policy every 2,500
# updates and each budget's decoder stage trains a decoder per snapshot and scores it on the
# same 5 episodes (added 2026-12-02: runs recorded before have no such curve; these two
# flags leave the run keys alone).
# Every stage trains in fp32 (--precision fp32): "auto" is bf16 on a CPU with AMX, and the
# study's machine changes between sessions; its first runs were fp32 (an AVX2 machine).
# SWEEP_ARGS adds flags to the sweep (e.g. --force after changing a setting).
# The sweep's records (runs.jsonl, every stage's summary and curves, the evaluations, the
# logs: no weights, no data) are kept under $RECORDS, saved after every recorded run, to
# commit, so the study outlives the machine: on a new one they are restored first, the
# data is collected again alike (the cache keys name a dataset by its content), and only
# unrecorded work trains.
# UNTIL=lam: every run stops after its LAM (its probes, no acting policy, no return), in a
# sweep folder of its own: findings 1 and 2 turn on the LAMs' probes alone, and a LAM is
# about a fifth of a whole run's compute, so their seeds come first when compute is short.
UNTIL=${UNTIL:-}
S=$OUT/sweep-$DIFFICULTY${UNTIL:+-until-$UNTIL}
R=$RECORDS/sweep-$DIFFICULTY${UNTIL:+-until-$UNTIL}
EPISODES=25; [ -n "$UNTIL" ] && EPISODES=0
[ -d "$R" ] && $LAOM records restore "$S" "$R"  # (the sweep's --records does it too; --plan needs it first)
mode=(--records "$R"); [ -n "${PLAN:-}" ] && mode=(--plan)
# FIRST=laom: that method's runs start first, so its chain (LAM, latent BC, every budget)
# finishes while its weights are on this machine (docs/study_plan.md); FIRST=laom,bc,lapo:
# method by method in that order, then the rest by budget; FIRST=laom-labels/128,laom: one
# run (a method's budget) before the rest of its method; FIRST=walker-run:laom@1,walker-run:lapo-nofsq@1:
# one task's seed of each method before any second seed.
[ -n "${FIRST:-}" ] && mode+=(--first "$FIRST")
[ -n "$UNTIL" ] && mode+=(--until "$UNTIL")
$LAOM sweep --tasks "$TASKS" --methods "$METHODS" --labeled "$BUDGETS" --seeds "$SEEDS" \
  --data "$D/{task}-train.hdf5" --eval-data "$D/{task}-eval.hdf5" --out "$S" \
  --preset cpu --episodes "$EPISODES" --workers 2 --no-progress --jobs "$JOBS" "${mode[@]}" \
  --epoch_transitions 100000 --lam.max_trajectories 100 --bc.max_trajectories 100 \
  --idm.max_trajectories 100 --bc.epochs 8 --bc-baseline.epochs 8 --idm.epochs 8 \
  --lam.probe_every 390 --bc-baseline.curve_every 2500 --idm.curve_every 2500 \
  --bc.snapshot_every 2500 --decoder.snapshot_episodes 5 --precision fp32 ${SWEEP_ARGS:-}
[ -n "${PLAN:-}" ] && exit 0
# The whole study's report, from every records folder there is: the distractor setting's
# whole and probe-only runs (unnamed: they merge), those without distractors named vanilla.
# docs/results is this report with --out docs/results --readme README.md.
STUDY_DISTRACTORS=${STUDY_DISTRACTORS:-scale_easy_video_hard}
sweeps=()
for setting in "$STUDY_DISTRACTORS" vanilla; do
  for folder in "$RECORDS/sweep-$setting" "$RECORDS/sweep-$setting-until-lam"; do
    [ -f "$folder/runs.jsonl" ] || continue
    if [ "$setting" = vanilla ] && [ "$STUDY_DISTRACTORS" != vanilla ]; then sweeps+=("vanilla=$folder"); else sweeps+=("$folder"); fi
  done
done
echo "laom report ${sweeps[*]} --out $OUT/report --paper"
$LAOM report "${sweeps[@]}" --out "$OUT/report" --paper
