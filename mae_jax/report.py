"""End-of-run report in the workdir: loss.png, accuracy.png, per_class.png and results.md.

Curves come from each stage's metrics.jsonl; the table from summary.json, with the figures
published for the run's dataset (references.py) beside ours; per-class accuracy from
summary.json too (per_class.py).
"""

import json
import os
from typing import Any

from etils import epath   # the workdir may be on GCS (gs://)

from mae_jax import figures, per_class, references

LOSS_PNG, ACCURACY_PNG, RESULTS_MD = "loss.png", "accuracy.png", "results.md"
KNN_PNG = "knn.png"   # pretraining's k-NN accuracy on frozen features (monitor.py)

# How results.md names summary.json's metric keys (references.py uses the same keys).
METRIC_LABELS = {"top1": "top-1 %", "top5": "top-5 %", "miou": "mIoU %",
                 "pixel_acc": "pixel acc %", "dice": "mean Dice", "mse": "MSE", "mae": "MAE",
                 "rmse": "RMSE", "wd": "Wasserstein"}


def read_metrics(path: str) -> list[dict[str, Any]]:
  """The records of a metrics.jsonl; [] when there is none."""
  p = epath.Path(path)
  if not p.exists():
    return []
  return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def run_metrics(workdir: str, summary: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
  """{run name: metrics records} of every trained stage and baseline in `summary`."""
  folders = {name: name for name in summary if name not in ("baselines", "visualize")}
  folders.update({b: os.path.join("baselines", b) for b in summary.get("baselines", {})})
  out = {}
  for name, folder in folders.items():
    records = read_metrics(os.path.join(workdir, folder, "metrics.jsonl"))
    if records:
      out[name] = records
  return out


def _series(records: list[dict[str, Any]], split: str, key: str) -> tuple[list[int], list[float]]:
  rows = [r for r in records if r.get("split") == split and isinstance(r.get(key), (int, float))]
  return [r["step"] for r in rows], [r[key] for r in rows]


def plot_curves(runs: dict[str, list[dict[str, Any]]], key: str, ylabel: str, path: str,
                titles: dict[str, str] | None = None, twins: dict[str, str] | None = None
                ) -> bool:
  """One panel per run with its train and eval `key` against step; a twin baseline (`twins`:
  baseline -> stage) drawn on its stage's panel, so the gap is seen at a glance. False if no
  run has `key`."""
  plt = figures.pyplot()

  titles, twins = titles or {}, twins or {}
  def has(n: str) -> bool:
    return bool(_series(runs[n], "train", key)[0] or _series(runs[n], "eval", key)[0])

  shown = [n for n in runs if has(n) and not (n in twins and twins[n] in runs and has(twins[n]))]
  if not shown:
    return False
  fig, axes = plt.subplots(1, len(shown), figsize=(4.5 * len(shown), 3.5), squeeze=False)
  for ax, name in zip(axes[0], shown):
    pair = [(name, "C0", "")] + [(b, "C1", "random init ") for b, s in twins.items()
                                 if s == name and b in runs and has(b)]
    for run, colour, prefix in pair:
      for split, style in (("train", "-"), ("eval", "o-")):
        steps, values = _series(runs[run], split, key)
        if steps:
          ax.plot(steps, values, style, color=colour, label=prefix + split, markersize=4,
                  alpha=0.6 if split == "train" else 1.0)
    ax.set_title(titles.get(name, name) + (" vs random init" if len(pair) > 1 else ""))
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
  figures.save_png(fig, path)
  return True


def _runs(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
  """{run name: result} of every stage and baseline in `summary`."""
  runs = {k: v for k, v in summary.items() if k not in ("baselines", "visualize")}
  return {**runs, **summary.get("baselines", {})}


def _top1_column(summary: dict[str, Any], dataset: str, variant: str
                 ) -> references.FigureSet | None:
  """The published set whose top-1 fills the table's last column: one with a top-1 for a run
  of `summary`, the one of this run's model where there is such."""
  runs = _runs(summary)
  sets = [s for s in references.figure_sets(dataset)
          if any("top1" in m for r, m in s.rows.items() if r in runs)]
  same = [s for s in sets if s.model.removeprefix("ViT-") == variant]
  return (same or sets or [None])[0]


def results_table(summary: dict[str, Any], dataset: str, variant: str,
                  titles: dict[str, str] | None = None) -> str:
  """Markdown: one row per stage and baseline (`titles`: name -> row); a published column where
  `dataset` has one."""
  titles = titles or {}
  ref = _top1_column(summary, dataset, variant)
  head = ["run", f"ours ({variant}) top-1 %", "top-5 %"]
  results = [*summary.values(), *summary.get("baselines", {}).values()]
  if any("mse" in r for r in results):
    head = ["run", f"ours ({variant}) MSE", "MAE"]
  if any("rmse" in r for r in results):
    head = ["run", f"ours ({variant}) RMSE", "MSE", "Wasserstein (sum over columns)"]
  if any("dice" in r for r in results):
    head = ["run", f"ours ({variant}) mean Dice", "per class"]
  examples = any("train_examples" in r for r in results)
  searched = any("lr_search" in r for r in results)
  if examples:
    head.append("training examples")
  if searched:
    head.append("base_lr (chosen on held-out training or validation data, never test)")
  if ref:
    head.append(f"{ref.source}, {ref.model} top-1 %")
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  rows = [(k, v) for k, v in summary.items() if k not in ("baselines", "visualize")]
  rows += list(summary.get("baselines", {}).items())
  for name, result in rows:
    if "top1" in result:
      cells = [f"{result['top1']:.2f}", f"{result.get('top5', float('nan')):.2f}"]
    elif "miou" in result:
      cells = [f"mIoU {result['miou']:.2f}", f"pixel acc {result['pixel_acc']:.2f}"]
    elif "rmse" in result:
      # MSE beside RMSE: the study's metric (summaries written before it lack it).
      mse = result.get("mse", result["rmse"] ** 2)
      cells = [f"{result['rmse']:.4f}", f"{mse:.5f}", f"{result['wd']:.4f}"]
    elif "dice" in result:
      cells = [f"{result['dice']:.4f}", ", ".join(
          f"{k} {'-' if v is None else f'{v:.3f}'}" for k, v in result["per_class_dice"].items())]
    elif "mse" in result:
      cells = [f"{result['mse']:.4f}", f"{result['mae']:.4f}"]
    elif "loss" in result:
      cells = [f"loss {result['loss']:.4f}", ""]
    else:
      continue
    row = [titles.get(name, name), *cells]
    if examples:
      row.append(str(result.get("train_examples", "")))
    if searched:
      row.append(_chosen_lr(result))
    if ref:
      published = ref.rows.get(name, {}).get("top1")
      row.append(f"{published:.2f}" if published is not None else "")
    lines.append("| " + " | ".join(row) + " |")
  return "\n".join(lines) + "\n"


def _chosen_lr(result: dict[str, Any]) -> str:
  """"3e-3 of 1e-3 / 3e-3 / 1e-2" for a run whose lr was searched, else ""."""
  if "lr_search" not in result:
    return ""
  return f"{result['base_lr']:g} of {' / '.join(result['lr_search'])}"


# The score a paired difference is taken on, in order of preference, and whether higher is better.
_SCORES = (("top1", True), ("miou", True), ("dice", True), ("mse", False), ("rmse", False))


def paired_differences(summary: dict[str, Any], titles: dict[str, str] | None,
                       twins: dict[str, str]) -> str:
  """Markdown: each stage minus its random-init twin (the same seeds, only the encoder's init
  differs) on the stage's score; "" without a pair."""
  titles, lines = titles or {}, []
  for baseline, stage in twins.items():
    ours, theirs = summary.get(stage), summary.get("baselines", {}).get(baseline)
    if not ours or not theirs:
      continue
    for key, higher in _SCORES:
      if key in ours and key in theirs:
        better = "higher" if higher else "lower"
        lines.append(f"| {titles.get(stage, stage)} | {key} | {ours[key]:.4g} | "
                     f"{theirs[key]:.4g} | {ours[key] - theirs[key]:+.4g} ({better} is better) |")
        break
  if not lines:
    return ""
  return ("\n## Pretrained vs random init (paired: the same seeds)\n\n"
          "| stage | score | pretrained | random init | difference |\n|---|---|---|---|---|\n"
          + "\n".join(lines) + "\n")


def _published_table(figures: references.FigureSet, runs: dict[str, dict[str, Any]],
                     titles: dict[str, str]) -> str:
  """Markdown: one set's rows, each figure with this run's own beside it where a run of the
  row's name has that metric."""
  keys = list(dict.fromkeys(k for metrics in figures.rows.values() for k in metrics))
  head = ["run or model", *(METRIC_LABELS.get(k, k) for k in keys)]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for name, metrics in figures.rows.items():
    ours = runs.get(name, {})
    cells = []
    for k in keys:
      cell = f"{metrics[k]:g}" if k in metrics else ""
      if k in metrics and isinstance(ours.get(k), (int, float)):
        cell += f" (this run: {ours[k]:.4g})"
      cells.append(cell)
    lines.append("| " + " | ".join([titles.get(name, name), *cells]) + " |")
  return "\n".join(lines) + "\n"


def published_figures(summary: dict[str, Any], dataset: str,
                      titles: dict[str, str] | None = None) -> str:
  """Markdown: every set published for `dataset` (references.py), each under its source with
  this run's figures beside; "" where none is."""
  sets = references.figure_sets(dataset)
  if not sets:
    return ""
  runs, titles = _runs(summary), titles or {}
  md = ["\n## Published figures\n\n"
        "Figures others published for this dataset, each set under its source. Where a row "
        "names one of this run's stages or baselines, this run's figure stands beside "
        "(\"this run\"). Ours come from this run's config, which may differ from the "
        "source's in model size, schedule, data and protocol; each set's note says how.\n"]
  for s in sets:
    md.append(f"\n### {s.source}: {s.model}\n\n")
    if s.note:
      md.append(f"Note: {s.note}\n\n")
    md.append(_published_table(s, runs, titles))
  return "".join(md)


def write_report(workdir: str, summary: dict[str, Any], dataset: str, variant: str,
                 titles: dict[str, str] | None = None, twins: dict[str, str] | None = None
                 ) -> list[str]:
  """Writes the plots and results.md into `workdir`; returns the files written. `titles`: run
  name -> its name in the report; `twins`: random-init baseline -> the stage it pairs with."""
  runs = run_metrics(workdir, summary)
  written = []
  for key, label, name in (("loss", "loss", LOSS_PNG), ("top1", "top-1 %", ACCURACY_PNG),
                           ("knn_top1", "k-NN top-1 % (frozen features)", KNN_PNG)):
    if plot_curves(runs, key, label, os.path.join(workdir, name), titles, twins):
      written.append(name)
  chart = per_class.PER_CLASS_PNG
  if not per_class.plot(summary, os.path.join(workdir, chart), titles, twins):
    chart = ""
  md = [f"# Results: {dataset}, {variant}\n", results_table(summary, dataset, variant, titles),
        paired_differences(summary, titles, twins or {}),
        per_class.section(summary, titles, twins, chart)]
  md.append(published_figures(summary, dataset, titles))
  md += [f"\n![{n}]({n})\n" for n in written]
  epath.Path(workdir, RESULTS_MD).write_text("".join(md))
  return written + ([chart] if chart else []) + [RESULTS_MD]


def forecast_plot(path: str, source: Any, split: str, preds: dict[str, Any], num_windows: int
                  ) -> Any:
  """PNG of `num_windows` windows spread over `split`: the look-back, the truth and each
  forecast in `preds` ({label: (windows, H, M)}) of the last variable (the target under
  setting S, OT in ETT files). -> the image, uint8 (H, W, 3)."""
  plt = figures.pyplot()
  import numpy as np  # pylint: disable=g-import-not-at-top

  count = len(next(iter(preds.values())))
  chosen = np.unique(np.linspace(0, count - 1, max(num_windows, 1)).astype(int))
  fig, axes = plt.subplots(len(chosen), 1, figsize=(9, 2.2 * len(chosen)), squeeze=False)
  x, y = source.windows(split, chosen)
  lookback, horizon = x.shape[1], y.shape[1]
  for ax, k, xs, ys in zip(axes[:, 0], chosen, x, y):
    ax.plot(np.arange(-lookback, 0), xs[:, -1], color="0.5", lw=1, label="look-back")
    ax.plot(np.arange(horizon), ys[:, -1], color="k", lw=1, label="truth")
    for i, (label, pred) in enumerate(preds.items()):
      ax.plot(np.arange(horizon), pred[k, :, -1], color=f"C{3 + i}", lw=1, label=label)
    ax.set_title(f"{split} window {k}: {source.variables[-1]} from "
                 f"{str(source.target_dates(split, int(k))[0]).replace('T', ' ')}", fontsize=9)
    ax.grid(alpha=0.3)
  axes[0, 0].legend(fontsize=8, loc="upper left")
  axes[-1, 0].set_xlabel("steps from the forecast start (scaled values)")
  return figures.save_png(fig, path)


def moving_average(values: Any, window: int) -> Any:
  """(n,) -> (n - window + 1,) float64: the mean of each run of `window` consecutive values,
  entry i ending at values[i + window - 1] (np.convolve's "valid" part); window <= 1 -> the
  values as they are."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  values = np.asarray(values, np.float64)
  if window <= 1:
    return values
  if window > len(values):
    return values[:0]
  total = np.concatenate([[0.0], np.cumsum(values)])
  return (total[window:] - total[:-window]) / window


def forecast_series_plot(path: str, dates: Any, truth: Any, preds: dict[str, Any], smooth: int,
                         title: str) -> Any:
  """PNG of next-step forecasts along a whole split, as the TinyImageNet study plots them:
  `truth` (n,) and each of `preds` ({label: (n,)}) against `dates` (n,); with `smooth` > 1 their
  moving averages of `smooth` steps (each at its window's middle date) over the raw series drawn
  faint. -> the image, uint8 (H, W, 3)."""
  plt = figures.pyplot()
  smoothed = smooth > 1 and smooth <= len(truth)
  fig, ax = plt.subplots(figsize=(11, 3.8))
  lines = [("truth", truth, "k")] + [(k, v, f"C{3 + i}") for i, (k, v) in enumerate(preds.items())]
  for label, values, colour in lines:
    # Raw: the whole story when unsmoothed, a faint backdrop under the moving averages.
    ax.plot(dates, values, color=colour, lw=0.6 if smoothed else 1.0,
            alpha=0.2 if smoothed else 0.9, label=None if smoothed else label)
    if smoothed:
      # At its window's middle date: drawn at the last one, the average would trail the raw.
      middle = (smooth - 1) // 2
      ax.plot(dates[middle:middle + len(values) - smooth + 1], moving_average(values, smooth),
              color=colour, lw=1.3, label=f"{label} (moving average of {smooth})")
  ax.set_title(title, fontsize=9)
  ax.set_ylabel("scaled value")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8, loc="upper left")
  fig.autofmt_xdate()
  return figures.save_png(fig, path)
