"""Bad and odd inputs to ``laom``, run as a new user would: one subprocess per command line.

Issue 16's bar: every bad input ends in exit 2 with exactly one ``laom: error:`` line on
stderr that names the flag or file at fault, no traceback, and nothing written (the temp
folder holding every input and output is snapshotted before and after each case); every
odd-but-valid input is accepted (exit 0, no traceback). Each case is judged on those rules,
failures are printed as a table, and the last line counts them.

    nice -n 19 .venv/bin/python scripts/bad_inputs.py            # the whole corpus
    nice -n 19 .venv/bin/python scripts/bad_inputs.py --quick    # no training cases
    nice -n 19 .venv/bin/python scripts/bad_inputs.py -k collect # cases whose id contains "collect"

The inputs (tiny synthetic HDF5 files in the release's layout, a text file named .hdf5, an
HDF5 file of another layout, a folder named like a file, a unicode path...) are built in a
temp folder; nothing is collected and no environment is stepped beyond the checks. Exit
status: 0 when every case passed, 1 otherwise. ``tests/test_bad_inputs.py`` runs the quick
subset's error cases as an integration test.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

REPO = Path(__file__).resolve().parent.parent
ERROR_LINE = re.compile(r"^laom(?: [\w-]+)*: error: ")
MEMORY_LIMIT = 8 << 30  # bytes of address space per case
UNICODE = "données ü"  # a folder name with a space and non-ASCII letters

# Tiny settings for the few cases that train: one epoch of small networks on 16x16 frames.
TINY = ["--threads", "1", "--batch_size", "16", "--epochs", "1", "--frame_stack", "2", "--latent_dim", "16",
        "--head_dim", "32", "--head_blocks", "1", "--probe_samples", "100", "--probe_eval_samples", "100"]  # fmt: skip


# The integration test's share (tests/test_bad_inputs.py): one or two refusals per
# command, chosen among those the corpus once found wrong; about a minute in all.
CI_SUBSET = (
    "top/unknown-command", "collect/seed-negative", "collect/img-hw-huge", "collect/out-is-text-file",
    "data/info-gray-frames", "data/info-empty-string", "data/sample-compression-bogus", "data/merge-tasks-differ",
    "env/preview-frames-over-steps", "env/preview-img-hw-8", "expert/train-lr-negative", "expert/train-net-0",
    "lam/data-other-layout", "lam/config-binary", "bc-baseline/data-gray", "pipeline/tasks-differ",
    "pipeline/normalizer-inf", "sweep/labeled-empty-item", "evaluate/policy-is-file", "report/sweep-no-runs",
    "records/restore-not-records",
    "demo/img-hw-0", "demo/expert-missing",
)  # fmt: skip


@dataclass
class Case:
    """One command line and what a careful CLI must do with it."""

    id: str
    argv: list[str]  # after ``laom``; "{T}" is the temp folder
    names: tuple[str, ...] = ()  # each must appear in the error line (the flag, file or value at fault)
    ok: bool = False  # odd but valid: must be accepted
    trains: bool = False  # runs a (tiny) training: left out by --quick
    timeout: float = 60.0
    why: str = ""
    extra: dict = field(default_factory=dict)


def build_inputs(root: Path) -> None:
    """The files the cases read, in ``root`` (a fresh temp folder)."""
    sys.path.insert(0, str(REPO))
    from laom.training.synthetic import write_moving_square

    write_moving_square(root / "data.hdf5", trajectories=6, length=20, img_hw=16, seed=0)  # 114 transitions: a batch of 64
    write_moving_square(root / "labeled.hdf5", trajectories=2, length=20, img_hw=16, seed=1)
    write_moving_square(root / "cheetah.hdf5", trajectories=6, length=20, img_hw=16, seed=2, task=("cheetah", "run"))
    write_moving_square(root / "walker.hdf5", trajectories=2, length=20, img_hw=16, seed=3, task=("walker", "walk"))
    write_moving_square(root / "big.hdf5", trajectories=2, length=20, img_hw=24, seed=4)
    write_moving_square(root / "short.hdf5", trajectories=2, length=1, img_hw=16, seed=5)  # no (o_t, o_t+1) pair
    (root / UNICODE).mkdir()
    shutil.copy(root / "data.hdf5", root / UNICODE / "vidéo.hdf5")
    (root / "text.hdf5").write_text("this is not an HDF5 file\n")
    (root / "empty.hdf5").write_bytes(b"")
    with h5py.File(root / "other.hdf5", "w") as f:  # HDF5, another layout (a model's weights)
        f["weights"] = np.zeros((4, 4), np.float32)
    with h5py.File(root / "gray.hdf5", "w") as f:  # release layout, but frames without a colour axis
        f.attrs.update(domain_name="square", task_name="move")
        g = f.create_group("0")
        g["obs"] = np.zeros((5, 16, 16), np.uint8)
        g["actions"] = np.zeros((5, 2), np.float32)
        g["states"] = np.zeros((5, 4), np.float32)
    (root / "dir.hdf5").mkdir()  # a folder named like a file
    (root / "emptydir").mkdir()
    (root / "afile").write_text("a file where a folder is expected\n")
    (root / "notes.txt").write_text("some notes\n")
    (root / "bad.yaml").write_text("epochs: [1, 2\n")  # not valid YAML
    (root / "list.yaml").write_text("- 1\n- 2\n")  # valid YAML, not a mapping
    (root / "keep.hdf5").write_bytes((root / "labeled.hdf5").read_bytes())  # an existing output
    (root / "fakerun").mkdir()  # a run folder with a config but no model
    (root / "fakerun" / "config.yaml").write_text("epochs: 1\n")
    (root / "emptysweep").mkdir()
    (root / "emptysweep" / "runs.jsonl").write_text("")
    (root / "badsweep").mkdir()
    (root / "badsweep" / "runs.jsonl").write_text("{not json\n")


def build_artifacts(root: Path, selected: Sequence[Case]) -> None:
    """What only some cases read and costs seconds to make: a tiny LAM run (relabel) and a
    Minari export (import), built only when a selected case needs them."""
    need = {name for case in selected for name in case.extra.get("needs", ())}
    if "lam" in need:
        subprocess.run([*laom_command(), "train", "lam", "--method", "laom", "--data", str(root / "data.hdf5"),
                        "--out", str(root / "lamrun"), *TINY, "--progress", "false"],
                       check=True, capture_output=True)  # fmt: skip
    if "minari" in need:
        subprocess.run([*laom_command(), "data", "export", str(root / "data.hdf5"), "--format", "minari",
                        "--out", str(root / "minari"), "--quiet"], check=True, capture_output=True)  # fmt: skip


def cases() -> list[Case]:
    T = "{T}"
    d, lab, ch, wk = f"{T}/data.hdf5", f"{T}/labeled.hdf5", f"{T}/cheetah.hdf5", f"{T}/walker.hdf5"
    out = f"{T}/out"
    col = ["collect", "--task", "cheetah-run", "--episodes", "2", "--out", f"{T}/c.hdf5"]
    sl = ["data", "sample-labeled", d, "-n", "2", "--chunk", "10"]
    pv = ["env", "preview", "cheetah-run", "--steps", "10", "--frames", "4", "--out", f"{T}/p.png"]
    bench = ["env", "bench", "cheetah-run", "--steps", "10"]
    et = ["expert", "train", "cheetah-run", "--steps", "100", "--out", f"{T}/expert"]
    lam = ["train", "lam", "--method", "laom", "--data", d, "--out", out]
    bcb = ["train", "bc-baseline", "--data", d, "--out", out]
    pipe = ["pipeline", "--method", "laom", "--data", d, "--labeled", lab, "--out", out, "--episodes", "0"]
    sweep = ["sweep", "--tasks", "square-move", "--methods", "bc", "--labeled", "2", "--seeds", "0", "--data", d,
             "--out", out, "--episodes", "0", "--chunk", "10"]  # fmt: skip
    ev = ["evaluate", "--policy", f"{T}/fakerun", "--episodes", "1"]
    rel = ["relabel", "--lam", f"{T}/lamrun", "--data", d, "--out", f"{T}/r.hdf5", "--quiet"]
    exp = ["data", "export", d, "--format", "minari", "--out", f"{T}/exp", "--quiet"]
    imp = ["data", "import", f"{T}/minari", "--out", f"{T}/i.hdf5", "--quiet"]
    lam_run, minari = {"needs": ("lam",)}, {"needs": ("minari",)}
    demo = ["demo", "--out", out]

    def c(id: str, argv: list[str], *names: str, **kw) -> Case:
        return Case(id, argv, names, **kw)

    return [
        # ----------------------------------------------------------------- top level
        c("top/no-command", [], "COMMAND"),
        c("top/unknown-command", ["colect"], "colect"),
        c("top/version", ["--version"], ok=True),
        c("top/train-no-stage", ["train"], "STAGE"),
        c("top/train-unknown-stage", ["train", "vae"], "vae"),
        # ----------------------------------------------------------------- collect
        c("collect/episodes-0", [*col[:4], "0", *col[5:]], "--episodes 0"),
        c("collect/episodes-negative", [*col[:4], "-3", *col[5:]], "--episodes -3"),
        c("collect/episodes-word", [*col[:4], "ten", *col[5:]], "--episodes", "ten"),
        c("collect/episodes-float", [*col[:4], "2.5", *col[5:]], "--episodes", "2.5"),
        c("collect/task-no-dash", ["collect", "--task", "cheetah", *col[3:]], "cheetah"),
        c("collect/task-empty", ["collect", "--task", "", *col[3:]], "--task"),
        c("collect/task-unknown", ["collect", "--task", "cheetah-fly", *col[3:]], "cheetah-fly"),
        c("collect/img-hw-0", [*col, "--img-hw", "0"], "--img-hw 0"),
        c("collect/img-hw-huge", [*col, "--img-hw", "100000"], "--img-hw 100000"),
        c("collect/workers-negative", [*col, "--workers", "-1"], "--workers -1"),
        c("collect/shard-out-of-range", [*col, "--shard", "3/2"], "--shard 3/2"),
        c("collect/shard-word", [*col, "--shard", "half"], "--shard half"),
        c("collect/compression-unknown", [*col, "--compression", "zip"], "--compression zip"),
        c("collect/gzip-level-12", [*col, "--compression", "gzip:12"], "--compression gzip:12"),
        c("collect/max-steps-0", [*col, "--max-steps", "0"], "--max-steps 0"),
        c("collect/action-noise-negative", [*col, "--action-noise", "-0.1"], "--action-noise -0.1"),
        c("collect/action-noise-nan", [*col, "--action-noise", "nan"], "--action-noise nan"),
        c("collect/difficulty-unknown", [*col, "--difficulty", "extreme"], "extreme"),
        c("collect/split-unknown", [*col, "--split", "test"], "--split test"),
        c("collect/backgrounds-missing", [*col, "--backgrounds", f"{T}/davis"], "--backgrounds", "davis"),
        c("collect/backgrounds-empty", [*col, "--backgrounds", f"{T}/emptydir"], "--backgrounds", "emptydir"),
        c("collect/expert-text-file", [*col, "--expert", f"{T}/notes.txt"], "notes.txt"),
        c("collect/seed-negative", [*col, "--seed", "-1"], "--seed -1"),
        c("collect/out-under-file", [*col[:-1], f"{T}/afile/c.hdf5"], "--out", "afile"),
        c("collect/out-is-dir", [*col[:-1], f"{T}/dir.hdf5"], "--out", "dir.hdf5"),
        c("collect/out-is-text-file", [*col[:-1], f"{T}/text.hdf5"], "--out", "text.hdf5"),
        # ----------------------------------------------------------------- data
        c("data/info-missing", ["data", "info", f"{T}/missing.hdf5"], "missing.hdf5"),
        c("data/info-text-file", ["data", "info", f"{T}/text.hdf5"], "text.hdf5"),
        c("data/info-empty-file", ["data", "info", f"{T}/empty.hdf5"], "empty.hdf5"),
        c("data/info-directory", ["data", "info", f"{T}/dir.hdf5"], "dir.hdf5"),
        c("data/info-other-layout", ["data", "info", f"{T}/other.hdf5"], "other.hdf5"),
        c("data/info-gray-frames", ["data", "info", f"{T}/gray.hdf5"], "gray.hdf5"),
        c("data/info-empty-string", ["data", "info", ""], "empty"),
        c("data/info-unicode-path", ["data", "info", f"{T}/{UNICODE}/vidéo.hdf5"], ok=True),
        c("data/info-json", ["data", "info", d, "--json"], ok=True),
        c("data/validate-text-file", ["data", "validate", f"{T}/text.hdf5"], "text.hdf5"),
        c("data/validate-other-layout", ["data", "validate", f"{T}/other.hdf5"], "other.hdf5"),
        c("data/validate-directory", ["data", "validate", f"{T}/dir.hdf5"], "dir.hdf5"),
        c("data/validate-deep", ["data", "validate", d, "--deep"], ok=True),
        c("data/sample-n-0", [*sl[:4], "0", *sl[5:], "--out", f"{T}/s.hdf5"], "--trajectories 0"),
        c("data/sample-n-negative", [*sl[:4], "-2", *sl[5:], "--out", f"{T}/s.hdf5"], "-2"),
        c("data/sample-n-word", [*sl[:4], "two", *sl[5:], "--out", f"{T}/s.hdf5"], "two"),
        c("data/sample-n-too-many", [*sl[:4], "1000", *sl[5:], "--out", f"{T}/s.hdf5"], "1000"),
        c("data/sample-chunk-0", [*sl[:6], "0", "--out", f"{T}/s.hdf5"], "--chunk 0"),
        c("data/sample-chunk-negative", [*sl[:6], "-5", "--out", f"{T}/s.hdf5"], "--chunk -5"),
        c("data/sample-existing-out", [*sl, "--out", f"{T}/keep.hdf5"], "--out", "keep.hdf5"),
        c("data/sample-out-is-src", [*sl, "--out", d, "--force"], "data.hdf5"),
        c("data/sample-src-text", ["data", "sample-labeled", f"{T}/text.hdf5", "-n", "1", "--out", f"{T}/s.hdf5"],
          "text.hdf5"),  # fmt: skip
        c("data/sample-out-under-file", [*sl, "--out", f"{T}/afile/s.hdf5"], "--out", "afile"),
        c("data/sample-compression-bogus", [*sl, "--out", f"{T}/s.hdf5", "--compression", "brotli"], "--compression"),
        c("data/sample-unicode-out", [*sl, "--out", f"{T}/{UNICODE}/étiqueté.hdf5"], ok=True),
        c("data/merge-missing-shard", ["data", "merge", f"{T}/m.hdf5", f"{T}/missing.hdf5"], "missing.hdf5"),
        c("data/merge-text-shard", ["data", "merge", f"{T}/m.hdf5", f"{T}/text.hdf5"], "text.hdf5"),
        c("data/merge-tasks-differ", ["data", "merge", f"{T}/m.hdf5", ch, wk], "walker"),
        c("data/merge-out-is-shard", ["data", "merge", d, d, "--force"], "data.hdf5"),
        c("data/merge-out-under-file", ["data", "merge", f"{T}/afile/m.hdf5", d], "afile"),
        c("data/merge-no-shards", ["data", "merge", f"{T}/m.hdf5"], "shards"),
        # ----------------------------------------------------------------- env
        c("env/preview-task-unknown", ["env", "preview", "cheetah-fly", "--out", f"{T}/p.png"], "cheetah-fly"),
        c("env/preview-steps-0", [*pv[:4], "0", *pv[5:]], "--steps 0"),
        c("env/preview-frames-0", [*pv[:6], "0", *pv[7:]], "--frames 0"),
        c("env/preview-frames-over-steps", [*pv[:6], "50", *pv[7:]], "--frames 50"),
        c("env/preview-out-under-file", [*pv[:-1], f"{T}/afile/p.png"], "--out", "afile"),
        c("env/preview-out-jpg", [*pv[:-1], f"{T}/p.jpg"], "--out", "p.jpg"),
        c("env/preview-img-hw-8", [*pv, "--img-hw", "8"], "--img-hw 8"),
        c("env/preview-camera-scale-negative", [*pv, "--camera-scale", "-1"], "--camera-scale -1"),
        c("env/preview-color-scale-nan", [*pv, "--color-scale", "nan"], "--color-scale nan"),
        c("env/preview-render-slow", [*pv, "--render", "slow"], "--render slow"),
        c("env/bench-steps-0", [*bench[:4], "0"], "--steps 0"),
        c("env/bench-workers-0", [*bench, "--workers", "0"], "--workers 0"),
        c("env/bench-workers-negative", [*bench, "--workers", "-4"], "--workers -4"),
        # ----------------------------------------------------------------- expert
        c("expert/train-steps-0", [*et[:4], "0", *et[5:]], "--steps 0"),
        c("expert/train-task-unknown", ["expert", "train", "cheetah-fly", *et[3:]], "cheetah-fly"),
        c("expert/train-lr-negative", [*et, "--lr", "-1"], "--lr -1"),
        c("expert/train-batch-0", [*et, "--batch-size", "0"], "--batch-size 0"),
        c("expert/train-net-0", [*et, "--net", "0"], "--net"),
        c("expert/train-algo-unknown", [*et, "--algo", "ppo"], "--algo", "ppo"),
        c("expert/train-out-under-file", [*et[:-1], f"{T}/afile/e"], "--out", "afile"),
        c("expert/eval-text-file", ["expert", "eval", f"{T}/notes.txt"], "notes.txt"),
        c("expert/eval-builtin-unknown", ["expert", "eval", "builtin:cheetah-fly"], "cheetah-fly"),
        c("expert/eval-episodes-0", ["expert", "eval", "builtin:cheetah-run", "--episodes", "0"], "--episodes 0"),
        c("expert/export-missing", ["expert", "export", f"{T}/missing.npz", f"{T}/x.npz"], "missing.npz"),
        c("expert/export-out-under-file", ["expert", "export", "builtin:cheetah-run", f"{T}/afile/x.npz"], "afile"),
        c("expert/export-out-is-dir", ["expert", "export", "builtin:cheetah-run", f"{T}/emptydir"], "emptydir"),
        c("expert/list", ["expert", "list"], ok=True),
        # ----------------------------------------------------------------- train lam
        c("lam/method-unknown", ["train", "lam", "--method", "vae", "--data", d, "--out", out], "--method", "vae"),
        c("lam/data-text-file", [*lam[:4], "--data", f"{T}/text.hdf5", "--out", out], "--data", "text.hdf5"),
        c("lam/data-empty-file", [*lam[:4], "--data", f"{T}/empty.hdf5", "--out", out], "--data", "empty.hdf5"),
        c("lam/data-other-layout", [*lam[:4], "--data", f"{T}/other.hdf5", "--out", out], "--data", "other.hdf5"),
        c("lam/data-directory", [*lam[:4], "--data", f"{T}/dir.hdf5", "--out", out], "--data", "dir.hdf5"),
        c("lam/data-one-frame", [*lam[:4], "--data", f"{T}/short.hdf5", "--out", out], "--data", "short.hdf5"),
        c("lam/data-empty-string", [*lam[:4], "--data", "", "--out", out], "--data"),
        c("lam/out-under-file", [*lam[:-1], f"{T}/afile/run"], "--out", "afile"),
        c("lam/out-is-file", [*lam[:-1], f"{T}/afile"], "--out", "afile"),
        c("lam/labels-without-labeled", ["train", "lam", "--method", "laom-labels", "--data", d, "--out", out],
          "--labeled"),  # fmt: skip
        c("lam/labeled-other-task", ["train", "lam", "--method", "laom-labels", "--data", ch, "--labeled", wk,
                                     "--out", out], "--labeled", "walker"),  # fmt: skip
        c("lam/labeled-other-size", ["train", "lam", "--method", "laom-labels", "--data", d, "--labeled",
                                     f"{T}/big.hdf5", "--out", out], "--labeled", "big.hdf5"),  # fmt: skip
        c("lam/eval-data-other-task", [*lam, "--eval-data", wk], "--eval-data", "walker"),
        c("lam/config-missing", [*lam, "--config", f"{T}/missing.yaml"], "--config", "missing.yaml"),
        c("lam/config-bad-yaml", [*lam, "--config", f"{T}/bad.yaml"], "bad.yaml"),
        c("lam/config-yaml-list", [*lam, "--config", f"{T}/list.yaml"], "list.yaml"),
        c("lam/config-binary", [*lam, "--config", f"{T}/data.hdf5"], "data.hdf5"),
        c("lam/config-unknown-preset", [*lam, "--config", "papr"], "--config", "papr"),
        c("lam/latent-dim-0", [*lam, "--latent_dim", "0"], "--latent_dim 0"),
        c("lam/latent-dim-inf", [*lam, "--latent_dim", "inf"], "--latent_dim inf"),
        c("lam/learning-rate-nan", [*lam, "--learning_rate", "nan"], "--learning_rate nan"),
        c("lam/learning-rate-word", [*lam, "--learning_rate", "fast"], "--learning_rate fast"),
        c("lam/weight-decay-negative", [*lam, "--weight_decay", "-0.1"], "--weight_decay -0.1"),
        c("lam/frame-stack-0", [*lam, "--frame_stack", "0"], "--frame_stack 0"),
        c("lam/frame-stack-over-length", [*lam, "--frame_stack", "500"], "--frame_stack 500"),
        c("lam/threads-negative", [*lam, "--threads", "-1"], "--threads -1"),
        c("lam/channels-semicolons", [*lam, "--encoder_channels", "16;32"], "--encoder_channels 16;32"),
        c("lam/channels-empty", [*lam, "--encoder_channels", ""], "--encoder_channels"),
        c("lam/channels-negative", [*lam, "--encoder_channels", "16,-32"], "--encoder_channels"),
        # A flag typed twice: the last wins, as for every argparse flag (tests rely on it to override presets).
        c("lam/epochs-twice-last-wins", [*lam[:-1], f"{T}/lam-twice", *TINY, "--encoder_channels", "8,8,8", "--epochs", "1"],
          ok=True, trains=True, timeout=240),  # fmt: skip
        c("lam/device-cuda-without-gpu", [*lam, "--device", "cuda"], "--device cuda"),
        c("lam/field-with-dashes-bad-value", [*lam, "--learning-rate", "-1"], "learning_rate", "-1"),
        c("lam/field-equals", [*lam, "--epochs=0"], "--epochs"),
        c("lam/list-as-typed", [*lam[:-1], f"{T}/lam-ok", *TINY, "--encoder_channels", "[8, 8, 8]"], ok=True,
          trains=True, timeout=240),  # fmt: skip
        c("lam/unicode-out", [*lam[:-1], f"{T}/{UNICODE}/lam run", *TINY, "--encoder_channels", "8", "8", "8"],
          ok=True, trains=True, timeout=240),  # fmt: skip
        # ----------------------------------------------------------------- other stages
        c("bc/lam-empty-dir", ["train", "bc", "--lam", f"{T}/emptydir", "--data", d, "--out", out], "--lam", "emptydir"),
        c("bc/lam-missing", ["train", "bc", "--lam", f"{T}/nolam", "--data", d, "--out", out], "--lam", "nolam"),
        c("bc/lam-is-file", ["train", "bc", "--lam", f"{T}/notes.txt", "--data", d, "--out", out], "--lam", "notes.txt"),
        c("decoder/policy-empty-dir", ["train", "decoder", "--policy", f"{T}/emptydir", "--labeled", lab, "--out", out],
          "--policy", "emptydir"),  # fmt: skip
        c("decoder/policy-without-model", ["train", "decoder", "--policy", f"{T}/fakerun", "--labeled", lab,
                                           "--out", out], "--policy", "fakerun"),  # fmt: skip
        c("idm/data-of-the-one-stage-baseline", ["train", "idm", "--labeled", lab, "--data", d, "--out", out],
          "--data", "idm-bc"),  # fmt: skip
        c("idm/labeled-text-file", ["train", "idm", "--labeled", f"{T}/text.hdf5", "--out", out], "--labeled", "text.hdf5"),
        c("idm-bc/idm-empty-dir", ["train", "idm-bc", "--idm", f"{T}/emptydir", "--data", d, "--out", out],
          "--idm", "emptydir"),  # fmt: skip
        c("bc-baseline/eval-data-other-size", [*bcb, "--eval-data", f"{T}/big.hdf5"], "--eval-data", "big.hdf5"),
        c("bc-baseline/data-gray", ["train", "bc-baseline", "--data", f"{T}/gray.hdf5", "--out", out], "gray.hdf5"),
        c("bc-baseline/out-is-file", [*bcb[:-1], f"{T}/afile"], "--out", "afile"),
        c("bc-baseline/unknown-field", [*bcb, "--labeled_trajectories", "4"], "--labeled_trajectories"),
        c("bc-baseline/learning-rate-0", [*bcb, "--learning_rate", "0"], "--learning_rate 0"),
        # ----------------------------------------------------------------- pipeline
        c("pipeline/method-unknown", ["pipeline", "--method", "lapo2", *pipe[3:]], "--method", "lapo2"),
        c("pipeline/tasks-differ", ["pipeline", "--method", "laom", "--data", ch, "--labeled", wk, "--out", out,
                                    "--episodes", "0"], "--labeled", "walker"),  # fmt: skip
        c("pipeline/data-missing", ["pipeline", "--method", "laom", "--data", f"{T}/nodata.hdf5", "--labeled", lab,
                                    "--out", out, "--episodes", "0"], "--data", "nodata.hdf5"),  # fmt: skip
        c("pipeline/labeled-missing-flag", ["pipeline", "--method", "laom", "--data", d, "--out", out, "--episodes",
                                            "0"], "--labeled"),  # fmt: skip
        c("pipeline/out-under-file", [*pipe[:7], "--out", f"{T}/afile/root", "--episodes", "0"], "--out", "afile"),
        c("pipeline/preset-unknown", [*pipe, "--preset", "fast"], "--preset", "fast"),
        c("pipeline/episodes-negative", [*pipe[:-1], "-1"], "--episodes -1"),
        c("pipeline/normalizer-word", [*pipe, "--normalizer", "expert"], "--normalizer", "expert"),
        c("pipeline/normalizer-inf", [*pipe, "--normalizer", "inf"], "--normalizer inf"),
        c("pipeline/max-steps-0", [*pipe, "--max-steps", "0"], "--max-steps 0"),
        c("pipeline/stage-field-unknown", [*pipe, "--lam.bogus", "1"], "bogus"),
        c("pipeline/stage-unknown", [*pipe, "--vae.epochs", "1"], "vae"),
        c("pipeline/eval-data-gray", [*pipe, "--eval-data", f"{T}/gray.hdf5"], "--eval-data", "gray.hdf5"),
        # ----------------------------------------------------------------- sweep
        c("sweep/tasks-empty", [sweep[0], "--tasks", "", *sweep[3:]], "--tasks"),
        c("sweep/task-unknown", [sweep[0], "--tasks", "cheetah-fly", *sweep[3:], "--data", ch], "cheetah-fly"),
        c("sweep/methods-unknown", [*sweep[:3], "--methods", "bc,vae", *sweep[5:]], "vae"),
        c("sweep/labeled-0", [*sweep[:5], "--labeled", "0", *sweep[7:]], "--labeled", "0"),
        c("sweep/labeled-words", [*sweep[:5], "--labeled", "a,b", *sweep[7:]], "--labeled", "a"),
        c("sweep/labeled-empty-item", [*sweep[:5], "--labeled", "2,,4", *sweep[7:]], "--labeled"),
        c("sweep/seeds-negative", [*sweep[:7], "--seeds", "-1", *sweep[9:]], "--seeds"),
        c("sweep/data-template-missing", [*sweep[:9], "--data", f"{T}/{{task}}.hdf5", *sweep[11:]], "--data"),
        c("sweep/data-task-differs", [*sweep[:9], "--data", wk, *sweep[11:]], "--data", "walker"),
        c("sweep/out-under-file", [*sweep[:11], "--out", f"{T}/afile/sweep", *sweep[13:]], "--out", "afile"),
        c("sweep/jobs-0", [*sweep, "--jobs", "0"], "--jobs 0"),
        c("sweep/chunk-0", [*sweep[:-1], "0"], "--chunk 0"),
        c("sweep/preset-unknown", [*sweep, "--preset", "huge"], "--preset", "huge"),
        c("sweep/episodes-negative", [*sweep[:13], "--episodes", "-1", *sweep[15:]], "--episodes -1"),
        c("sweep/normalizer-word", [*sweep, "--normalizer", "best"], "--normalizer", "best"),
        # ----------------------------------------------------------------- evaluate
        c("evaluate/policy-missing", ["evaluate", "--policy", f"{T}/norun"], "--policy", "norun"),
        c("evaluate/policy-empty-dir", ["evaluate", "--policy", f"{T}/emptydir"], "--policy", "emptydir"),
        c("evaluate/policy-is-file", ["evaluate", "--policy", f"{T}/notes.txt"], "--policy", "notes.txt"),
        c("evaluate/policy-without-model", ev, "--policy", "fakerun"),
        c("evaluate/episodes-0", [*ev[:-1], "0"], "--episodes 0"),
        c("evaluate/episodes-negative", [*ev[:-1], "-5"], "--episodes -5"),
        c("evaluate/normalizer-word", [*ev, "--normalizer", "abc"], "--normalizer", "abc"),
        c("evaluate/device-tpu", [*ev, "--device", "tpu"], "--device", "tpu"),
        c("evaluate/num-envs-word", [*ev, "--num-envs", "four"], "--num-envs", "four"),
        # ----------------------------------------------------------------- relabel
        c("relabel/lam-missing", ["relabel", "--lam", f"{T}/nolam", *rel[3:]], "--lam", "nolam"),
        c("relabel/lam-is-text", ["relabel", "--lam", f"{T}/notes.txt", *rel[3:]], "--lam", "notes.txt"),
        c("relabel/lam-run-without-model", ["relabel", "--lam", f"{T}/fakerun", *rel[3:]], "--lam", "fakerun"),
        c("relabel/data-text", [*rel[:4], f"{T}/text.hdf5", *rel[5:]], "text.hdf5", extra=lam_run),
        c("relabel/data-gray", [*rel[:4], f"{T}/gray.hdf5", *rel[5:]], "gray.hdf5", extra=lam_run),
        c("relabel/data-other-frame-size", [*rel[:4], f"{T}/big.hdf5", *rel[5:]], "big.hdf5", extra=lam_run),
        c("relabel/out-is-data", [*rel[:6], d, "--quiet"], "--out", "data.hdf5", extra=lam_run),
        c("relabel/out-existing-other-file", [*rel[:6], f"{T}/keep.hdf5", "--quiet"], "--out", "keep.hdf5",
          extra=lam_run),  # fmt: skip
        c("relabel/out-under-file", [*rel[:6], f"{T}/afile/r.hdf5", "--quiet"], "--out", "afile", extra=lam_run),
        c("relabel/batch-size-0", [*rel, "--batch-size", "0"], "--batch-size 0", extra=lam_run),
        c("relabel/device-tpu", [*rel, "--device", "tpu"], "--device", "tpu", extra=lam_run),
        c("relabel/decoder-is-text", [*rel, "--decoder", f"{T}/notes.txt"], "--decoder", "notes.txt", extra=lam_run),
        c("relabel/decoder-run-without-model", [*rel, "--decoder", f"{T}/fakerun"], "--decoder", "fakerun",
          extra=lam_run),  # fmt: skip
        c("relabel/unicode-out", [*rel[:6], f"{T}/{UNICODE}/réétiqueté.hdf5", "--quiet"], ok=True, extra=lam_run),
        # ----------------------------------------------------------------- data export / import
        c("export/format-unknown", [*exp[:4], "parquet", *exp[5:]], "--format", "parquet"),
        c("export/format-lerobot", [*exp[:4], "lerobot", *exp[5:]], "lerobot"),
        c("export/src-missing", [*exp[:2], f"{T}/missing.hdf5", *exp[3:]], "missing.hdf5"),
        c("export/src-text", [*exp[:2], f"{T}/text.hdf5", *exp[3:]], "text.hdf5"),
        c("export/src-other-layout", [*exp[:2], f"{T}/other.hdf5", *exp[3:]], "other.hdf5"),
        c("export/out-exists", [*exp[:6], f"{T}/emptydir", "--quiet"], "--out", "emptydir"),
        c("export/out-under-file", [*exp[:6], f"{T}/afile/exp", "--quiet"], "--out", "afile"),
        c("export/dataset-id-bad", [*exp, "--dataset-id", "no spaces allowed"], "--dataset-id"),
        c("export/unicode-out", [*exp[:6], f"{T}/{UNICODE}/exporté", "--quiet"], ok=True),
        c("import/src-missing", ["data", "import", f"{T}/nominari", *imp[3:]], "nominari"),
        c("import/src-is-file", ["data", "import", f"{T}/notes.txt", *imp[3:]], "notes.txt"),
        c("import/src-empty-dir", ["data", "import", f"{T}/emptydir", *imp[3:]], "emptydir"),
        c("import/out-existing", [*imp[:4], f"{T}/keep.hdf5", "--quiet"], "--out", "keep.hdf5", extra=minari),
        c("import/out-under-file", [*imp[:4], f"{T}/afile/i.hdf5", "--quiet"], "--out", "afile", extra=minari),
        c("import/compression-bogus", [*imp, "--compression", "brotli"], "--compression", extra=minari),
        c("import/round-trip", imp, ok=True, extra=minari),
        # ----------------------------------------------------------------- report
        c("report/sweep-missing", ["report", f"{T}/nosweep", "--out", f"{T}/rep"], "nosweep"),
        c("report/sweep-empty-dir", ["report", f"{T}/emptydir", "--out", f"{T}/rep"], "emptydir"),
        c("report/sweep-is-file", ["report", f"{T}/notes.txt", "--out", f"{T}/rep"], "notes.txt"),
        c("report/sweep-no-runs", ["report", f"{T}/emptysweep", "--out", f"{T}/rep"], "emptysweep"),
        c("report/sweep-bad-jsonl", ["report", f"{T}/badsweep", "--out", f"{T}/rep"], "badsweep"),
        c("report/named-empty", ["report", "strong=", "--out", f"{T}/rep"], "strong="),
        c("report/out-under-file", ["report", f"{T}/emptysweep", "--out", f"{T}/afile/rep"], "--out", "afile"),
        # ----------------------------------------------------------------- records
        c("records/save-not-a-sweep", ["records", "save", f"{T}/emptydir", f"{T}/rec"], "emptydir"),
        c("records/save-into-a-file", ["records", "save", f"{T}/emptysweep", f"{T}/afile"], "afile"),
        c("records/save-into-itself", ["records", "save", f"{T}/emptysweep", f"{T}/emptysweep"], "emptysweep"),
        c("records/restore-missing", ["records", "restore", f"{T}/newsweep", f"{T}/norecords"], "norecords"),
        c("records/restore-not-records", ["records", "restore", f"{T}/newsweep", f"{T}/emptydir"], "emptydir"),
        c("records/restore-into-a-file", ["records", "restore", f"{T}/afile", f"{T}/emptysweep"], "afile"),
        c("records/sweep-records-into-a-folder-of-other-files",
          [*sweep, "--out", f"{T}/newsweep", "--records", T], "--records"),
        c("records/sweep-records-is-a-file", [*sweep, "--out", f"{T}/newsweep", "--records", f"{T}/afile"], "--records", "afile"),
        c("records/action-unknown", ["records", "load", f"{T}/emptysweep", f"{T}/rec"], "load"),
        # ----------------------------------------------------------------- demo
        c("demo/methods-empty", [*demo, "--methods", ""], "--methods"),
        c("demo/methods-spaces-unknown", [*demo, "--methods", "bc, vae"], "vae"),
        c("demo/rollouts-negative", [*demo, "--rollouts", "-1"], "--rollouts -1"),
        c("demo/img-hw-0", [*demo, "--img-hw", "0"], "--img-hw 0"),
        c("demo/workers-negative", [*demo, "--workers", "-1"], "--workers -1"),
        c("demo/episode-steps-0", [*demo, "--episode-steps", "0"], "--episode-steps 0"),
        c("demo/eval-episodes-negative", [*demo, "--eval-episodes", "-1"], "--eval-episodes -1"),
        c("demo/labeled-0", [*demo, "--labeled", "0"], "--labeled 0"),
        c("demo/expert-missing", [*demo, "--expert", f"{T}/noexpert.npz"], "--expert", "noexpert.npz"),
        c("demo/difficulty-unknown", [*demo, "--difficulty", "nightmare"], "nightmare"),
        c("demo/out-under-file", ["demo", "--out", f"{T}/afile/demo"], "--out", "afile"),
    ]


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file and folder under ``root``: what a refused command must not touch."""
    out: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_size if name in filenames else 0, st.st_mtime_ns)
    return out


@dataclass
class Result:
    case: Case
    problems: list[str]
    seconds: float
    stderr: str


def _limit_memory() -> None:
    """Cap a case's address space, so an accepted huge size fails in it instead of exhausting the machine."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def laom_command() -> list[str]:
    exe = Path(sys.executable).with_name("laom")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "laom"]


def run_case(case: Case, root: Path) -> Result:
    """Run one case in a fresh process (its own process group, killed whole on timeout) and judge it."""
    argv = [a.replace("{T}", str(root)) for a in case.argv]
    before = snapshot(root)
    start = time.monotonic()
    proc = subprocess.Popen([*laom_command(), *argv], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, preexec_fn=_limit_memory)  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=case.timeout)
        rc: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        rc = None
    seconds = time.monotonic() - start
    problems: list[str] = []
    if "Traceback (most recent call last)" in stdout + stderr:
        problems.append("traceback")
    if rc is None:
        problems.append(f"still running after {case.timeout:.0f} s (the input was accepted)")
    elif case.ok:
        if rc != 0:
            problems.append(f"refused (exit {rc})")
    else:
        lines = [line for line in stderr.splitlines() if line.strip()]
        errors = [line for line in lines if ERROR_LINE.match(line)]
        # argparse's refusals too are one line (laom.cli.Parser): anything else is noise.
        noise = [line for line in lines if not ERROR_LINE.match(line)]
        if rc == 0:
            problems.append("accepted (exit 0)")
        elif rc != 2:
            problems.append(f"exit {rc}")
        if len(errors) != 1:
            problems.append(f"{len(errors)} error lines")
        if noise and "traceback" not in problems:
            problems.append(f"other output on stderr: {noise[0][:80]!r}")
        if errors:
            missing = [name for name in case.names if not names(errors[0], name)]
            if missing:
                problems.append(f"error line does not name {', '.join(missing)}")
        after = snapshot(root)
        changed = sorted(k for k in after.keys() | before.keys() if after.get(k) != before.get(k))
        if changed:
            problems.append(f"wrote {', '.join(changed[:3])}")
    clean_up(root, before)
    return Result(case, problems, seconds, stderr)


def names(line: str, name: str) -> bool:
    """Whether an error line names ``name`` ("--flag value": the flag and the value, quoted or not)."""
    line = line.replace("'", "").replace('"', "")
    return all(word in line for word in name.split())


def clean_up(root: Path, before: dict[str, tuple[int, int]]) -> None:
    """Remove what a case created, so no case sees another's output (inputs it changed are reported, not restored)."""
    for rel in sorted(set(snapshot(root)) - set(before), key=len):
        path = root / rel
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists() or path.is_symlink():
            path.unlink()


def run_corpus(selected: Iterable[Case], root: Path, echo: bool = True) -> list[Result]:
    results = []
    for case in selected:
        res = run_case(case, root)
        results.append(res)
        if echo:
            mark = "ok  " if not res.problems else "FAIL"
            print(f"{mark} {res.seconds:5.1f}s {case.id}", flush=True)
    return results


def error_line(res: Result) -> str:
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if ERROR_LINE.match(line)]
    return (errors or lines or [""])[-1][:160]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="leave out the cases that train")
    parser.add_argument("-k", default=None, help="only cases whose id contains this")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (its path is printed)")
    parser.add_argument("--show", action="store_true", help="print every case's last stderr line")
    args = parser.parse_args(argv)
    selected = [c for c in cases() if not (args.quick and c.trains) and (args.k is None or args.k in c.id)]
    root = Path(tempfile.mkdtemp(prefix="laom-bad-inputs-"))
    try:
        build_inputs(root)
        build_artifacts(root, selected)
        results = run_corpus(selected, root)
    finally:
        if args.keep:
            print(f"inputs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    failed = [r for r in results if r.problems]
    if args.show:
        for r in results:
            print(f"{r.case.id:40s} {error_line(r)}")
    if failed:
        print("\nfailures:")
        width = max(len(r.case.id) for r in failed)
        for r in failed:
            print(f"  {r.case.id:<{width}}  {'; '.join(r.problems)}")
            print(f"  {'':<{width}}  stderr: {error_line(r)}")
    tracebacks = sum("traceback" in r.problems for r in results)
    accepted = sum(any(p.startswith(("accepted", "still running")) for p in r.problems) for r in results)
    print(f"\n{len(results)} cases: {len(results) - len(failed)} passed, {len(failed)} failed "
          f"({tracebacks} tracebacks, {accepted} bad inputs accepted)")  # fmt: skip
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
