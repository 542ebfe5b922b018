"""Learning curves of single runs, for docs/: return and offline action MSE against
updates for policy runs (``--curve_every``), or with ``--probe`` the probe MSE / chance
against training samples of LAM runs (``--probe_every``; both protocols):
``python scripts/plot_curve.py [--probe] RUN [NAME=RUN ...] --out PNG [--expert RETURN]``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from laom.training.curve import read_curve


def plot_probes(runs: list[str], out: str) -> int:
    fig, ax = plt.subplots(figsize=(8.5, 4))
    for i, text in enumerate(runs):
        name, _, path = text.rpartition("=")
        file = Path(path) / "probe_curve.jsonl"
        if not file.is_file():
            print(f"{path}: no probe_curve.jsonl", file=sys.stderr)
            return 2
        rows = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
        c = f"C{i}"
        pts = [(r["samples"], r["action_probe_rel"]) for r in rows if r["samples"] > 0]
        online = [(r["samples"], r["online_probe_rel"]) for r in rows if r["samples"] > 0 and r.get("online_probe_rel")]
        if pts:
            ax.plot(*zip(*pts, strict=True), color=c, marker="o", markersize=3, label=f"{name or path}: held-out videos")
        if online:
            ax.plot(*zip(*online, strict=True), color=c, linestyle="--", label=f"{name or path}: online probe")
    ax.axhline(1.0, color="black", linestyle=":", linewidth=1, label="chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("LAM training samples")
    ax.set_ylabel("probe MSE / action variance")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1))  # outside: the curves overlap
    fig.tight_layout()
    fig.savefig(out, dpi=130)
    print(f"written: {out}")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("runs", nargs="+", help="RUN or NAME=RUN")
    p.add_argument("--out", required=True)
    p.add_argument("--expert", type=float, default=None, help="expert return: drawn with its 80%% and 50%% lines")
    p.add_argument("--probe", action="store_true", help="LAM runs: probe curves instead of return curves")
    args = p.parse_args()
    if args.probe:
        return plot_probes(args.runs, args.out)
    fig, (ret, mse) = plt.subplots(1, 2, figsize=(10, 3.8))
    for text in args.runs:
        name, _, path = text.rpartition("=")
        rows = read_curve(path)
        if not rows:
            print(f"{path}: no curve.jsonl rows", file=sys.stderr)
            return 2
        label = name or path
        pts = [(r["update"], r["return_mean"], r.get("return_std", 0.0)) for r in rows if "return_mean" in r]
        if pts:
            u, m, s = zip(*pts, strict=True)
            ret.errorbar(u, m, yerr=s, marker="o", markersize=3, capsize=3, label=label)
        off = [(r["update"], r["offline_action_mse"]) for r in rows if "offline_action_mse" in r]
        if off:
            mse.plot(*zip(*off, strict=True), marker="o", markersize=3, label=label)
            mse.axhline(rows[0]["constant_action_mse"], color="black", linestyle=":", linewidth=1)
    if args.expert:
        for share, style in ((1.0, "-"), (0.8, "--"), (0.5, ":")):
            ret.axhline(share * args.expert, color="gray", linestyle=style, linewidth=1,
                        label=f"{share:.0%} of the expert ({share * args.expert:.0f})")  # fmt: skip
    ret.set_xlabel("policy updates (batch 64)")
    ret.set_ylabel("return (mean ± std over episodes)")
    ret.set_title("Online return during training", fontsize=9)
    mse.set_xlabel("policy updates (batch 64)")
    mse.set_ylabel("action MSE on held-out videos")
    mse.set_title("Offline action MSE (dotted: predict the mean action)", fontsize=9)
    for ax in (ret, mse):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(args.out, dpi=130)
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
