"""Per-class top-1 accuracy of the classifier stages: their result entries, the results.md
section and per_class.png.

A class's accuracy is a ratio of sums over the whole eval split (every batch, device and
process): its examples predicted right over its examples, i.e. the diagonal over the row sums of
the split's confusion matrix (confusion.py). The mean top-1 hides the rare classes a dataset
has; this shows them.
"""

import collections
from typing import Any, Sequence

import numpy as np

from mae_jax import confusion, figures

# The result.json / summary.json entries: {class name: percent, None without examples} and
# {class name: eval examples}, in label order.
TOP1, EXAMPLES = "per_class_top1", "per_class_examples"
PER_CLASS_PNG = "per_class.png"
TABLE_MAX = 200   # more classes than this: a table shows the worst and best TABLE_SHOWN
TABLE_SHOWN = 10
CHART_MAX = 60    # more classes than this: the chart draws the worst and best CHART_MAX // 2


def class_names(source: Any, num_classes: int) -> list[str]:
  """The source's `class_names` when it has one per class, else "0".."K-1"; a name that
  repeats gets its class id appended (the names are dict keys)."""
  names = [str(n) for n in getattr(source, "class_names", ()) or ()]
  if len(names) != num_classes:
    return [str(i) for i in range(num_classes)]
  seen = collections.Counter(names)
  return [n if seen[n] == 1 else f"{n} ({i})" for i, n in enumerate(names)]


def entries(correct: np.ndarray, count: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
  """(K,) examples predicted right and examples of each class -> the TOP1 and EXAMPLES
  entries (a class without eval examples has no accuracy: None)."""
  correct, count = np.asarray(correct, np.float64), np.asarray(count, np.float64)
  return {TOP1: {n: float(100 * c / k) if k > 0 else None
                 for n, c, k in zip(names, correct, count)},
          EXAMPLES: {n: int(round(k)) for n, k in zip(names, count)}}


def from_predictions(pred: np.ndarray, labels: np.ndarray, names: Sequence[str]
                     ) -> dict[str, Any]:
  """int (N,) predicted and true classes -> the TOP1 and EXAMPLES entries."""
  # No label is ignored here: 255 is a class id like any other for a classifier.
  m = confusion.confusion_matrix(pred, labels, len(names), ignore_label=-1)
  return entries(np.diag(m), m.sum(axis=1), names)


def _panels(summary: dict[str, Any], twins: dict[str, str]
            ) -> list[tuple[str, dict[str, Any], str | None, dict[str, Any] | None]]:
  """(run, its result, random-init twin, its result) for each run with per-class entries;
  a twin rides beside its stage instead of alone."""
  runs = {k: v for k, v in summary.items() if k not in ("baselines", "visualize")}
  runs.update(summary.get("baselines", {}))
  runs = {k: v for k, v in runs.items() if isinstance(v, dict) and TOP1 in v}
  paired = {b: s for b, s in twins.items() if b in runs and s in runs}
  out = []
  for name, result in runs.items():
    if name in paired:
      continue
    twin = next((b for b, s in paired.items() if s == name), None)
    out.append((name, result, twin, runs[twin] if twin else None))
  return out


def worst_first(acc: dict[str, float | None]) -> list[str]:
  """Class names by accuracy, lowest first (ties in label order); classes without any eval
  example last."""
  rank = {n: i for i, n in enumerate(acc)}
  return sorted(acc, key=lambda n: (acc[n] is None, acc[n] or 0.0, rank[n]))


def _cut(order: list[str], limit: int, each: int) -> tuple[list[str], list[str]]:
  """(the worst, the best) of `order` when it is longer than `limit`; else (all, [])."""
  return (order, []) if len(order) <= limit else (order[:each], order[-each:])


def _pct(v: float | None) -> str:
  return "-" if v is None else f"{v:.2f}"


def section(summary: dict[str, Any], titles: dict[str, str] | None = None,
            twins: dict[str, str] | None = None, chart: str = "") -> str:
  """Markdown: per run with per-class entries, a table of its classes worst first with their
  eval examples (a random-init twin's column beside); "" when no run has them. `chart`: the
  image to show under the heading."""
  titles, panels = titles or {}, _panels(summary, twins or {})
  if not panels:
    return ""
  md = ["\n## Per-class top-1 (eval split)\n\n"
        "Each class's share of its eval examples predicted right, summed over the whole split; "
        "worst first. Every class of every run is in summary.json (`per_class_top1`, "
        "`per_class_examples`).\n"]
  if chart:
    md.append(f"\n![{chart}]({chart})\n")
  for name, result, twin, theirs in panels:
    acc, counts = result[TOP1], result.get(EXAMPLES, {})
    title = titles.get(name, name)
    head = ["class", "eval examples", f"{title} top-1 %"]
    if theirs is not None:
      head += [f"{titles.get(twin, twin)} top-1 %", "difference"]
    known = [c for c in worst_first(acc) if acc[c] is not None]
    missing = [c for c in acc if acc[c] is None]    # no eval example: no accuracy
    worst, best = _cut(known, TABLE_MAX, TABLE_SHOWN)
    md.append(f"\n### {title}\n\n")
    if best:
      md.append(f"{len(acc)} classes: the worst {len(worst)} and the best {len(best)} are shown "
                f"(sorted by {title})"
                + (f"; {len(missing)} have no eval example" if missing else "") + ".\n\n")
    else:
      worst += missing
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cls in worst + ([None] if best else []) + best:
      if cls is None:
        lines.append("| ... |" + " |" * (len(head) - 1))
        continue
      row = [cls.replace("|", "\\|"), str(counts.get(cls, "")), _pct(acc[cls])]
      if theirs is not None:
        other = theirs[TOP1].get(cls)
        diff = None if acc[cls] is None or other is None else acc[cls] - other
        row += [_pct(other), "-" if diff is None else f"{diff:+.2f}"]
      lines.append("| " + " | ".join(row) + " |")
    md.append("\n".join(lines) + "\n")
  return "".join(md)


def plot(summary: dict[str, Any], path: str, titles: dict[str, str] | None = None,
         twins: dict[str, str] | None = None) -> bool:
  """per_class.png: a panel per run, a horizontal bar per class, worst at the top; a random-init
  twin's bar beside its stage's. Over CHART_MAX classes, the worst and best CHART_MAX // 2.
  False when no run has per-class entries."""
  panels = _panels(summary, twins or {})
  if not panels:
    return False
  plt = figures.pyplot()

  titles = titles or {}
  rows = []
  for name, result, _, _ in panels:
    acc = result[TOP1]
    worst, best = _cut([c for c in worst_first(acc) if acc[c] is not None], CHART_MAX,
                       CHART_MAX // 2)
    rows.append((worst, best))
  bars = max(len(w) + len(b) + (1 if b else 0) for w, b in rows)
  fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 1.2 + 0.22 * bars),
                           squeeze=False)
  for ax, (name, result, twin, theirs), (worst, best) in zip(axes[0], panels, rows):
    shown = worst + ([""] if best else []) + best     # "": the gap between worst and best
    y = np.arange(len(shown))
    runs = [(result, titles.get(name, name), "C0")]
    if theirs is not None:
      runs.append((theirs, titles.get(twin, twin), "C1"))
    height = 0.8 / len(runs)
    for k, (r, label, colour) in enumerate(runs):
      values = [r[TOP1].get(c) if c else None for c in shown]
      ax.barh(y - 0.4 + height * (k + 0.5), [v or 0.0 for v in values], height=height,
              color=colour, label=label)
    ax.set_yticks(y, [c or "..." for c in shown], fontsize=7)
    ax.set_ylim(len(shown) - 0.5, -0.5)               # worst at the top
    ax.set_xlim(0, 100)
    ax.set_xlabel("top-1 % on the eval split")
    ax.grid(axis="x", alpha=0.3)
    total = len(result[TOP1])
    note = (f"\nworst {len(worst)} and best {len(best)} of {total} classes" if best
            else f" ({total} classes)")
    # The legend between the title and the bars: inside, it would hide the best classes'.
    ax.set_title(titles.get(name, name) + note, fontsize=10, pad=18 if len(runs) > 1 else 6)
    if len(runs) > 1:
      ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2,
                frameon=False)
  figures.save_png(fig, path)
  return True


def brief(summary: dict[str, Any]) -> dict[str, Any]:
  """`summary` (or one result) without its per-class entries: for the console, where a
  1000-class dataset would print thousands of lines (summary.json keeps them)."""
  return {k: brief(v) if isinstance(v, dict) else v for k, v in summary.items()
          if k not in (TOP1, EXAMPLES)}
