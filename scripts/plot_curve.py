"""Return and offline action MSE against updates for runs that kept a learning curve
(``--curve_every``): ``python scripts/plot_curve.py RUN [NAME=RUN ...] --out PNG
[--expert RETURN]``. Used for docs/acting_policies.md."""

from __future__ import annotations

import argparse
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from laom.training.curve import read_curve


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("runs", nargs="+", help="RUN or NAME=RUN")
    p.add_argument("--out", required=True)
    p.add_argument("--expert", type=float, default=None, help="expert return: drawn with its 80%% and 50%% lines")
    args = p.parse_args()
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
