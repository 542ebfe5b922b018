"""Kill-safety stress test: SIGKILL a writer at random moments, check the file every time.

    python -m laom.data.killtest --kills 30            # the journaled Writer
    python -m laom.data.killtest --kills 30 --no-journal   # plain h5py append+flush

A child process appends synthetic trajectories (random lengths and contents, each a
function of its index so every byte can be checked afterwards) for as long as it lives;
the parent kills it with SIGKILL after a random delay, then

1. records whether the raw file, before any recovery, opens and reads with plain h5py
   (with the journal this can fail: the undo has not been applied yet);
2. runs :func:`laom.data.format.validate`, which rolls back the unfinished trajectory,
   and checks that every trajectory present is bit-identical to what was written;
3. checks that plain h5py now opens and reads the whole file.

The next child resumes where the last commit ended, so the file grows across kills.
Exit status 0 means steps 2 and 3 never failed.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from laom.data.format import Writer, create, validate
from laom.data.journal import _HEADER, journal_path
from laom.errors import LaomError

ATTRS = {
    "domain_name": "synthetic",
    "task_name": "killtest",
    "difficulty": "vanilla",
    "dynamic": False,
    "img_hw": 24,
    "split": "train",
}


def synthetic(index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Trajectory ``index``: random but reproducible, lengths varied so commits vary."""
    rng = np.random.default_rng(index)
    length = int(rng.integers(20, 600))
    obs = rng.integers(0, 256, (length, 24, 24, 3), dtype=np.uint8)
    states = rng.standard_normal((length, 5)).astype(np.float32)
    actions = rng.standard_normal((length, 2)).astype(np.float32)
    return obs, states, actions, float(rng.standard_normal())


def child(path: Path, compression: str, journal: bool) -> None:
    """Append trajectories forever (until killed)."""
    if not path.exists():
        create(path, ATTRS)
    writer = Writer(path, compression, journal=journal)
    index = max(writer.indices, default=-1) + 1
    while True:
        writer.append(index, *synthetic(index))
        index += 1


def raw_readable(path: Path) -> bool:
    """Whether plain h5py (no laom recovery) opens the file and reads every trajectory."""
    try:
        with h5py.File(path, "r", locking=False) as h5:
            for name in h5:
                for field in ("obs", "states", "actions"):
                    h5[name][field][()]
                float(h5[name].attrs["traj_return"])
        return True
    except Exception:
        return False


def check_contents(path: Path) -> tuple[int, list[int]]:
    """Trajectory count, and the indices whose bytes differ from what was written."""
    bad = []
    with h5py.File(path, "r") as h5:
        names = sorted((n for n in h5), key=int)
        for name in names:
            obs, states, actions, ret = synthetic(int(name))
            g = h5[name]
            same = (
                np.array_equal(g["obs"][()], obs)
                and np.array_equal(g["states"][()], states)
                and np.array_equal(g["actions"][()], actions)
                and float(g.attrs["traj_return"]) == ret
            )
            if not same:
                bad.append(int(name))
        if names != [str(i) for i in range(len(names))]:
            bad.append(-1)
    return len(names), bad


def stress(
    kills: int,
    directory: Path,
    journal: bool = True,
    compression: str = "none",
    seed: int = 0,
    verbose: bool = True,
) -> dict[str, int]:
    """Run the kill loop; returns counts (``failures`` must be 0 for a safe writer)."""
    path = directory / "killtest.hdf5"
    path.unlink(missing_ok=True)
    journal_path(path).unlink(missing_ok=True)
    rng = np.random.default_rng(seed)
    counts = {"kills": 0, "pending": 0, "raw_unreadable": 0, "failures": 0, "trajectories": 0}
    cmd = [
        sys.executable,
        "-m",
        "laom.data.killtest",
        "--child",
        str(path),
        "--compression",
        compression,
    ]
    if not journal:
        cmd.append("--no-journal")
    for k in range(kills):
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE)
        time.sleep(float(rng.uniform(0.3, 3.0)))
        if proc.poll() is not None:
            raise RuntimeError(
                f"writer exited by itself: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        counts["kills"] += 1
        if not path.exists():
            note = "killed before the file was created"
        else:
            pending = (
                journal_path(path).exists() and journal_path(path).stat().st_size > _HEADER.size
            )
            counts["pending"] += int(pending)
            raw_ok = raw_readable(path)
            counts["raw_unreadable"] += int(not raw_ok)
            try:
                report = validate(path)
                n, bad = check_contents(path)
                ok = not bad and raw_readable(path) and n == report.trajectories
                note = f"{n} trajectories, raw file {'readable' if raw_ok else 'UNREADABLE before recovery'}"
                note += f", transaction pending: {pending}" + (
                    "" if ok else f", CONTENT MISMATCH {bad}"
                )
                counts["trajectories"] = n
            except LaomError as exc:
                ok = False
                note = f"VALIDATION FAILED: {exc}"
            if not ok:
                counts["failures"] += 1
                if not journal:  # start over so the baseline keeps measuring fresh kills
                    path.unlink()
        if verbose:
            print(f"kill {k + 1:2d}/{kills}: {note}", flush=True)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to put the file (default: a temp dir)"
    )
    parser.add_argument("--compression", default="none")
    parser.add_argument(
        "--no-journal", action="store_true", help="baseline: plain h5py append + flush"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.compression, not args.no_journal)
        return 0
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        counts = stress(args.kills, Path(tmp), not args.no_journal, args.compression, args.seed)
    mode = "plain h5py append+flush" if args.no_journal else "journaled Writer"
    print(
        f"{mode}: {counts['kills']} kills, {counts['pending']} mid-transaction, "
        f"{counts['raw_unreadable']} raw file unreadable before recovery, "
        f"{counts['failures']} failures after recovery, {counts['trajectories']} trajectories at the end"
    )
    return 1 if counts["failures"] else 0


if __name__ == "__main__":
    os.environ.setdefault("HDF5_USE_FILE_LOCKING", "TRUE")
    sys.exit(main())
