"""Semantic segmentation scores from one confusion matrix over a whole split.

The matrix is summed over every image, batch, device and process before any ratio is taken:
mIoU and accuracies are ratios of those sums, never means of per-image or per-batch ratios
(mmsegmentation's IoUMetric does the same).
"""

import numpy as np

from mae_jax.losses import IGNORE_LABEL


def confusion_matrix(pred: np.ndarray, labels: np.ndarray, num_classes: int,
                     weight: np.ndarray | None = None, ignore_label: int = IGNORE_LABEL
                     ) -> np.ndarray:
  """pred, labels: (...) int class ids -> (K, K) float64 counts, [true class, predicted class].

  Pixels labelled `ignore_label` (or any id outside 0..K-1) are not counted; `weight`
  (broadcastable to labels, e.g. (N, 1, 1) for padded batch slots) scales each pixel's count.
  """
  pred, labels = np.asarray(pred), np.asarray(labels)
  valid = (labels >= 0) & (labels < num_classes) & (labels != ignore_label)
  counts = None if weight is None else np.broadcast_to(np.asarray(weight, np.float64),
                                                        labels.shape)[valid]
  index = labels[valid].astype(np.int64) * num_classes + np.clip(pred[valid], 0, num_classes - 1)
  return np.bincount(index, weights=counts, minlength=num_classes * num_classes).astype(
      np.float64).reshape(num_classes, num_classes)


def scores(matrix: np.ndarray) -> dict[str, object]:
  """(K, K) confusion counts -> percentages: pixel_acc, miou and mean_acc over the classes
  present (a class whose union of truth and prediction is empty has no IoU and is left out,
  as is one with no true pixel from the accuracy), per_class_iou (None where undefined)."""
  m = np.asarray(matrix, np.float64)
  tp, truth, predicted = np.diag(m), m.sum(axis=1), m.sum(axis=0)
  union = truth + predicted - tp
  with np.errstate(divide="ignore", invalid="ignore"):
    iou = np.where(union > 0, tp / union, np.nan)
    acc = np.where(truth > 0, tp / truth, np.nan)
  total = m.sum()
  return {
      "pixel_acc": float(100 * tp.sum() / total) if total else float("nan"),
      "miou": float(100 * np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
      "mean_acc": float(100 * np.nanmean(acc)) if np.isfinite(acc).any() else float("nan"),
      "per_class_iou": [None if np.isnan(v) else float(100 * v) for v in iou],
  }
