"""Copy a dataset with every stored action clipped to [-LIMIT, LIMIT].

Why: the release's experts store raw actions (mostly far outside [-1, 1]) while the
environment executes the clipped ones; training on a clipped copy tests whether the raw
magnitudes help or hurt a policy (docs/acting_policies.md).

    python scripts/clip_actions.py SRC.hdf5 DST.hdf5 [--limit 1]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import h5py
import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    p.add_argument("--limit", type=float, default=1.0)
    args = p.parse_args()
    if args.dst.exists():
        raise SystemExit(f"{args.dst} exists; refusing to overwrite it")
    shutil.copyfile(args.src, args.dst)
    with h5py.File(args.dst, "r+") as f:
        for name in f:
            if isinstance(f[name], h5py.Group) and "actions" in f[name]:
                actions = f[name]["actions"]
                actions[...] = np.clip(actions[()], -args.limit, args.limit)
    print(f"wrote {args.dst}: actions clipped to [-{args.limit}, {args.limit}]")


if __name__ == "__main__":
    main()
