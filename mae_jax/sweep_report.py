"""A sweep's results: sweep.csv (a row per point), sweep.md (a table per axis), sweep.png.

Every figure is the mean over the seeds that finished, with the sample standard deviation
(ddof 1) beside it when there are two or more.
"""

import csv
import io
import json
import os
from typing import Any

import numpy as np
from etils import epath

from mae_jax import figures, report
from mae_jax.sweep_lib import Axis

SWEEP_MD, SWEEP_CSV, SWEEP_PNG = "sweep.md", "sweep.csv", "sweep.png"
# (column, table heading, format): what a point is scored by.
METRICS = (("linprobe_top1", "linear probe top-1 %", "{:.2f}"),
           ("linprobe_random_init_top1", "linear probe, random init", "{:.2f}"),
           ("linprobe_gain", "linear probe: pretrained - random (paired)", "{:+.2f}"),
           ("finetune_top1", "fine-tune top-1 %", "{:.2f}"),
           ("finetune_random_init_top1", "fine-tune, random init", "{:.2f}"),
           ("finetune_gain", "fine-tune: pretrained - random (paired)", "{:+.2f}"),
           ("segment_miou", "segmentation mIoU %", "{:.2f}"),
           ("segment_random_init_miou", "segmentation, random init", "{:.2f}"),
           ("segment_gain", "segmentation: pretrained - random (paired)", "{:+.2f}"),
           ("train_examples", "labelled examples", "{:.0f}"),
           ("forecast_mse", "forecast MSE", "{:.4f}"),
           ("forecast_mae", "forecast MAE", "{:.4f}"),
           ("pretrain_loss", "pretrain loss", "{:.4f}"),
           ("pretrain_knn_top1", "pretrain k-NN top-1 %", "{:.2f}"),
           ("pretrain_minutes", "pretrain min", "{:.1f}"),
           ("images_per_sec", "pretrain images/s", "{:.0f}"))

# Stages scored against their random-init twin (<stage>_random_init), and by what.
_PAIRED = (("linprobe", "top1"), ("finetune", "top1"), ("segment", "miou"))

# What sweep.png draws against each axis: accuracies, or a series' forecast MSE.
_PLOTTED = (("linprobe_top1", "o", "linear probe"),
            ("linprobe_random_init_top1", "o", "linear probe, random init"),
            ("finetune_top1", "s", "fine-tune"),
            ("finetune_random_init_top1", "s", "fine-tune, random init"),
            ("segment_miou", "D", "segmentation mIoU"),
            ("segment_random_init_miou", "D", "segmentation mIoU, random init"),
            ("forecast_mse", "^", "forecast MSE"))


def run_metrics(run_dir: str) -> dict[str, float]:
  """The figures of one finished run (its summary.json and pretrain/metrics.jsonl)."""
  summary = json.loads(epath.Path(run_dir, "summary.json").read_text())
  out = {}
  baselines = summary.get("baselines", {})
  for stage, key in _PAIRED:
    if key in summary.get(stage, {}):
      out[f"{stage}_{key}"] = float(summary[stage][key])
      out.setdefault("train_examples", summary[stage].get("train_examples"))
    twin = f"{stage}_random_init"
    if key in baselines.get(twin, {}):
      out[f"{twin}_{key}"] = float(baselines[twin][key])
      if f"{stage}_{key}" in out:
        # The same seed's pair: both arms saw the same examples in the same order.
        out[f"{stage}_gain"] = out[f"{stage}_{key}"] - out[f"{twin}_{key}"]
  if out.get("train_examples") is None:
    out.pop("train_examples", None)
  for key in ("mse", "mae"):
    if key in summary.get("forecast", {}):
      out[f"forecast_{key}"] = float(summary["forecast"][key])
  pretrain = summary.get("pretrain", {})
  if "loss" in pretrain:
    out["pretrain_loss"] = float(pretrain["loss"])
  if "knn_top1" in pretrain:
    out["pretrain_knn_top1"] = float(pretrain["knn_top1"])
  if "train_seconds" in pretrain:
    out["pretrain_minutes"] = float(pretrain["train_seconds"]) / 60
  # Throughput of the logged windows after the first (which holds the compilation).
  records = report.read_metrics(os.path.join(run_dir, "pretrain", "metrics.jsonl"))
  rates = [r["images_per_sec"] for r in records
           if r.get("split") == "train" and "images_per_sec" in r][1:]
  if rates:
    out["images_per_sec"] = float(np.median(rates))
  return out


def aggregate(per_seed: list[dict[str, float]]) -> dict[str, tuple[float, float | None, int]]:
  """{metric: (mean, std or None, number of seeds)} over the seeds that have the metric."""
  out = {}
  for key, _, _ in METRICS:
    values = [m[key] for m in per_seed if key in m]
    if values:
      std = float(np.std(values, ddof=1)) if len(values) > 1 else None
      out[key] = (float(np.mean(values)), std, len(values))
  return out


def _cell(stat: tuple[float, float | None, int] | None, fmt: str) -> str:
  if stat is None:
    return ""
  mean, std, _ = stat
  return fmt.format(mean) + (f" ± {fmt.replace('+', '').format(std)}" if std is not None else "")


def write(workdir: str, axes: list[Axis], names: dict[tuple[str, str], str],
          results: dict[str, dict[str, Any]], header: str, dataset: str = "") -> list[str]:
  """Writes the three files into `workdir`; returns their names.

  names: (axis name, point label) -> run name; results: run name -> {"overrides", "seeds"
  (per-seed metrics of the seeds that finished), "failed" (seed -> message), "missing" (seeds
  not run)}; dataset: the runs' config.data.dataset, whose published figures (references.py)
  close sweep.md.
  """
  stats = {name: aggregate(r["seeds"]) for name, r in results.items()}
  _write_csv(os.path.join(workdir, SWEEP_CSV), axes, names, results, stats)
  written = [SWEEP_CSV]
  if _plot(os.path.join(workdir, SWEEP_PNG), axes, names, stats):
    written.append(SWEEP_PNG)
  md = [header]
  # The columns some run has: classifier sweeps and series sweeps share the file format.
  shown = [m for m in METRICS if any(m[0] in s for s in stats.values())] or list(METRICS)
  for ax in axes:
    md.append(f"\n## {ax.name}\n\n| value | run | " + " | ".join(h for _, h, _ in shown)
              + " | seeds |\n|" + "---|" * (len(shown) + 3) + "\n")
    for point in ax.points:
      name = names[(ax.name, point.label)]
      r, s = results[name], stats[name]
      cells = [_cell(s.get(key), fmt) for key, _, fmt in shown]
      md.append(f"| {point.label} | {name} | " + " | ".join(cells) + f" | {_status(r)} |\n")
  if SWEEP_PNG in written:
    md.append(f"\n![{SWEEP_PNG}]({SWEEP_PNG})\n")
  # Beside the table, not in it: a published row names a kind of run, not a sweep point.
  md.append(report.published_figures({}, dataset) if dataset else "")
  epath.Path(workdir, SWEEP_MD).write_text("".join(md))
  return written + [SWEEP_MD]


def _status(result: dict[str, Any]) -> str:
  parts = [str(len(result["seeds"]))]
  parts += [f"seed {seed} failed: {msg}" for seed, msg in sorted(result["failed"].items())]
  if result["missing"]:
    parts.append("not run: seed " + ",".join(map(str, result["missing"])))
  return "; ".join(parts).replace("|", "/")


def _write_csv(path: str, axes: list[Axis], names: dict[tuple[str, str], str],
               results: dict[str, dict[str, Any]], stats: dict[str, dict]) -> None:
  columns = ["axis", "value", "run", "overrides"]
  for key, _, _ in METRICS:
    columns += [key, f"{key}_std"]
  columns += ["seeds_done", "failed"]
  buf = io.StringIO()
  writer = csv.writer(buf)
  writer.writerow(columns)
  for ax in axes:
    for point in ax.points:
      name = names[(ax.name, point.label)]
      r, s = results[name], stats[name]
      row = [ax.name, point.label, name, " ".join(f"{f}={v}" for f, v in r["overrides"])]
      for key, _, _ in METRICS:
        mean, std, _ = s.get(key, (None, None, 0))
        row += ["" if mean is None else f"{mean:.6g}", "" if std is None else f"{std:.6g}"]
      row += [len(r["seeds"]), "; ".join(f"seed {k}: {m}" for k, m in sorted(r["failed"].items()))]
      writer.writerow(row)
  epath.Path(path).write_text(buf.getvalue())


def _spans_decades(xs: list[float]) -> bool:
  """Whether positive axis values span at least a factor of 10 (then a log axis reads them)."""
  return min(xs) > 0 and max(xs) >= 10 * min(xs)


def _plot(path: str, axes: list[Axis], names: dict[tuple[str, str], str],
          stats: dict[str, dict]) -> bool:
  """A panel per axis: linear-probe and fine-tune top-1 against the axis's value (error bars:
  the std over seeds); a grid axis draws a line per combination of its other fields."""
  plt = figures.pyplot()

  plotted = [m for m in _PLOTTED if any(m[0] in s for s in stats.values())]
  shown = [ax for ax in axes if any(
      k in stats[names[(ax.name, p.label)]] for p in ax.points for k, _, _ in plotted)]
  if not shown:
    return False
  fig, panels = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 3.6), squeeze=False)
  for panel, ax in zip(panels[0], shown):
    numeric = all(p.x is not None for p in ax.points)
    series = list(dict.fromkeys(p.series for p in ax.points))
    labels = list(dict.fromkeys(p.label if not p.series else p.label.split(",")[0]
                                for p in ax.points))
    for metric, marker, title in plotted:
      for line in series:
        xs, ys, errs = [], [], []
        for p in ax.points:
          stat = stats[names[(ax.name, p.label)]].get(metric)
          if p.series != line or stat is None:
            continue
          xs.append(p.x if numeric else labels.index(p.label if not p.series
                                                     else p.label.split(",")[0]))
          ys.append(stat[0])
          errs.append(stat[1] or 0.0)
        if xs:
          name = title + (f" ({line})" if line else "")
          panel.errorbar(xs, ys, yerr=errs, marker=marker, capsize=3, label=name)
    if not numeric:
      panel.set_xticks(range(len(labels)), labels, rotation=20)
    elif _spans_decades([p.x for p in ax.points]):
      # Label fractions, counts and rates are read in ratios: 1% / 10% / 100% evenly spaced.
      ticks = sorted({p.x for p in ax.points})
      panel.set_xscale("log")
      panel.minorticks_off()
      panel.set_xticks(ticks, [f"{x:g}" for x in ticks])
    panel.set_title(ax.name)
    panel.set_ylabel({"forecast_mse": "MSE", "segment_miou": "mIoU %"}.get(plotted[0][0],
                                                                        "top-1 %"))
    panel.grid(alpha=0.3)
    panel.legend(fontsize=7)
  figures.save_png(fig, path)
  return True
