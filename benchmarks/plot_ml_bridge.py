"""Plot an ml_bridge record: conversion time vs rows, and inference times.

One row of two panels per section of the record (GPU, CPU; the ones that ran):

* left: time to get a torch tensor of the first k columns vs the number of rows
  (log-log), zero-copy (``meta.tensor``, solid) and the copy path (dashed), per
  column count k; the diagnostics lighter: zero-copy uncached (dotted), the GPU copy
  path with torch doing the column copies (dash-dot); the 5 us target as a grey line.
* right: inference time per call (wall, host-synchronized; log scale) of the in-place
  path, the model alone on a contiguous tensor and the copy path, for the MLP and the
  GNN; on a GPU, the device times (CUDA events) of in place and model alone as black
  markers.

Run: ``python benchmarks/plot_ml_bridge.py RECORD.json [--out PNG]`` (default: the
record's path with ``.png``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
BARS = [("in_place", "in place (ml.Model)", "tab:green"),
        ("model_alone", "model alone (contiguous)", "tab:blue"),
        ("copy_path", "copy path", "tab:red")]


def _series(entries: list[dict[str, Any]]) -> tuple[list[float], list[float], list[float],
                                                    list[float]]:
    xs, med, lo, hi = [], [], [], []
    for e in entries:
        if e.get("median") is None:
            continue
        xs.append(e["rows"])
        med.append(e["median"])
        lo.append(e["median"] - (e.get("p25") if e.get("p25") is not None else e["median"]))
        hi.append((e.get("p75") if e.get("p75") is not None else e["median"]) - e["median"])
    return xs, med, lo, hi


def plot_conversion(ax: Any, conv: dict[str, Any], title: str, target_us: float | None) -> None:
    if "results" not in conv:
        ax.text(0.5, 0.5, f"conversion: {conv.get('skipped', 'no data')}", ha="center",
                va="center", wrap=True, transform=ax.transAxes, fontsize=8)
        ax.set_title(title)
        return
    res = conv["results"]
    for i, k in enumerate(conv.get("columns", [])):
        color = COLORS[i % len(COLORS)]
        for label, style, marker, name in (("zero_copy", "-", "o", "zero-copy"),
                                           ("copy_path", "--", "s", "copy path"),
                                           ("copy_path_torch", "-.", "^",
                                            "copy path, torch copies"),
                                           ("zero_copy_uncached", ":", ".", "zero-copy, uncached")):
            entries = res.get(label, {}).get(f"k{k}", [])
            xs, med, lo, hi = _series(entries)
            if not xs:
                continue
            alpha = 0.5 if label in ("zero_copy_uncached", "copy_path_torch") else 1.0
            ax.errorbar(xs, med, yerr=[lo, hi], linestyle=style, marker=marker, color=color,
                        alpha=alpha, capsize=2, label=f"{name}, {k} columns")
    if target_us is not None:
        ax.axhline(target_us, color="grey", linewidth=0.8, linestyle="-.",
                   label=f"target {target_us:g} us")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rows N")
    ax.set_ylabel("time per tensor (us)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def plot_inference(ax: Any, inf: dict[str, Any], title: str) -> None:
    cases = [(name, inf[name]) for name in ("mlp", "gnn")
             if isinstance(inf.get(name), dict) and "wall_ms" in inf[name]]
    if not cases:
        ax.text(0.5, 0.5, f"inference: {inf.get('skipped', 'no data')}", ha="center",
                va="center", wrap=True, transform=ax.transAxes, fontsize=8)
        ax.set_title(title)
        return
    width = 0.8 / len(BARS)
    dev_labelled = False
    shown: list[float] = []
    for g, (name, case) in enumerate(cases):
        for b, (key, label, color) in enumerate(BARS):
            s = case["wall_ms"].get(key) or {}
            v = s.get("median")
            if v is None:
                continue
            x = g + (b - (len(BARS) - 1) / 2) * width
            shown.append(v)
            ax.bar(x, v, width, color=color, label=label if g == 0 else None)
            ax.text(x, v, f"{v:.3g}", ha="center", va="bottom", fontsize=7)
            d = (case.get("device_ms") or {}).get(key)
            if d and d.get("median") is not None:
                ax.plot([x], [d["median"]], marker="_", markersize=18, color="black",
                        label=None if dev_labelled else "device time (CUDA events)")
                dev_labelled = True
    ax.set_xticks(range(len(cases)))
    ax.set_xticklabels([f"{name.upper()}\n{case['rows']:,} rows" for name, case in cases])
    ax.set_yscale("log")
    if shown and min(shown) > 0:  # bars start well below the smallest, not at its foot
        ax.set_ylim(bottom=min(shown) / 4, top=max(shown) * 2)
    ax.set_ylabel("time per call (ms, wall)")
    ax.set_title(title)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=7)


def plot(record: dict[str, Any], out: Path) -> Path:
    sections = [(key, record[key]) for key in ("gpu", "cpu")
                if isinstance(record.get(key), dict)
                and ("conversion" in record[key] or "inference" in record[key])]
    if not sections:
        raise SystemExit("the record holds no GPU or CPU section with figures")
    target = None
    try:
        target = float(record["parameters"]["targets"]["zero_copy_us"].split()[-1])
    except (KeyError, ValueError, AttributeError, IndexError):
        pass
    fig, axes = plt.subplots(len(sections), 2, figsize=(13, 5 * len(sections)), squeeze=False)
    for row, (key, s) in enumerate(sections):
        label = s.get("device", key.upper())
        plot_conversion(axes[row][0], s.get("conversion", {}), f"{label}\nSoA block -> tensor",
                        target)
        plot_inference(axes[row][1], s.get("inference", {}), f"{label}\ninference per call")
    quick = " (quick run: not a measurement)" if record.get("quick") else ""
    fig.suptitle(f"ml bridge: zero-copy vs copy path - {record.get('device', '')}, "
                 f"{record.get('date', '')}{quick}", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("record", help="an ml_bridge_<device>.json record")
    parser.add_argument("--out", default=None, help="PNG path (default: RECORD with .png)")
    args = parser.parse_args(argv)
    path = Path(args.record)
    with open(path, encoding="utf-8") as f:
        record = json.load(f)
    out = Path(args.out) if args.out else path.with_suffix(".png")
    print(f"wrote {plot(record, out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
