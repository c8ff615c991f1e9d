"""Sliding-window inference over a whole volume, as MONAI's `sliding_window_inference` does it.

Host-side numpy and no model inside: the caller runs its jitted model on `Blender.window(...)`s
(in batches of any size) and hands each window's logits back to `Blender.add`. Windows overlap;
each voxel's result is sum(w * logits) / sum(w) over the windows covering it, w a per-window
importance map that trusts window centres more than their borders ("gaussian").

  blender = Blender(case.image.shape[:3], roi, overlap, num_classes)
  padded = blender.pad(case.image)
  for i in range(len(blender.starts)):
    blender.add(i, predict(blender.window(padded, i)))
  logits = blender.result()      # (X, Y, Z, K)
"""

import itertools
from typing import Sequence

import numpy as np

BLEND_MODES = ("constant", "gaussian")
# MONAI's floor for importance weights: the Gaussian's tails (exp(-8) at a border for the
# default sigma) would otherwise make a voxel seen only by window borders numerically fragile.
_MIN_WEIGHT = 1e-3


def window_starts(shape: Sequence[int], roi: Sequence[int], overlap: float
                  ) -> list[tuple[int, ...]]:
  """The windows' first voxel along each axis, all combinations in row-major order.

  Per axis the stride is roi * (1 - overlap) (at least 1; the whole axis when roi equals it),
  and windows step until one reaches the end, the last shifted back inside (MONAI's scan).
  `shape` must be at least `roi` on every axis (pad first).
  """
  if not 0 <= overlap < 1:
    raise ValueError(f"overlap must be in [0, 1), got {overlap}")
  per_axis = []
  for size, r in zip(shape, roi):
    if r > size:
      raise ValueError(f"roi {tuple(roi)} exceeds the (padded) shape {tuple(shape)}")
    stride = r if r == size else max(int(r * (1 - overlap)), 1)
    count = next(d for d in range(size) if d * stride + r >= size) + 1
    per_axis.append(sorted({min(d * stride, size - r) for d in range(count)}))
  return [tuple(int(s) for s in combo) for combo in itertools.product(*per_axis)]


def importance_map(roi: Sequence[int], mode: str = "gaussian", sigma_scale: float = 0.125
                   ) -> np.ndarray:
  """float32 (*roi) blending weights: "constant" ones; "gaussian" a separable Gaussian centred
  on the window, sigma = sigma_scale * roi per axis, peak ~1, floored at
  max(its minimum, 1e-3) (MONAI's compute_importance_map)."""
  if mode == "constant":
    return np.ones(tuple(roi), np.float32)
  if mode != "gaussian":
    raise ValueError(f"blend mode must be one of {BLEND_MODES}, got {mode!r}")
  weights = np.ones((), np.float32)
  for r in roi:
    x = np.arange(r, dtype=np.float32) - np.float32((r - 1) / 2)
    sigma = np.float32(r * sigma_scale)
    axis = np.exp(x ** 2 / (-2 * sigma ** 2)).astype(np.float32)
    weights = weights[..., None] * axis
  return np.maximum(weights, max(float(weights.min()), _MIN_WEIGHT)).astype(np.float32)


class Blender:
  """Accumulates window logits into one volume: sum(w * logits) / sum(w)."""

  def __init__(self, shape: tuple[int, int, int], roi: Sequence[int], overlap: float,
               num_classes: int, mode: str = "gaussian", sigma_scale: float = 0.125):
    self.shape = tuple(int(s) for s in shape)
    self.roi = tuple(int(r) for r in roi)
    # A volume smaller than roi is padded with zeros, split evenly (odd voxel after), as MONAI.
    diffs = [max(r - s, 0) for r, s in zip(self.roi, self.shape)]
    self.pad_widths = [(d // 2, d - d // 2) for d in diffs]
    self.padded_shape = tuple(s + d for s, d in zip(self.shape, diffs))
    self.starts: list[tuple[int, int, int]] = window_starts(self.padded_shape, self.roi, overlap)
    self._weights = importance_map(self.roi, mode, sigma_scale)
    self.num_classes = num_classes
    # Allocated at the first window: an evaluation pass builds every volume's Blender up front
    # (to count windows), and a BTCV volume's sums take ~300 MB.
    self._sum: np.ndarray | None = None
    self._norm: np.ndarray | None = None
    self._added = np.zeros(len(self.starts), bool)

  def _slices(self, i: int) -> tuple[slice, ...]:
    return tuple(slice(s, s + r) for s, r in zip(self.starts[i], self.roi))

  def pad(self, image: np.ndarray) -> np.ndarray:
    """(X, Y, Z, C) -> (padded X, Y, Z, C), the coordinates `starts` index."""
    if image.shape[:3] != self.shape:
      raise ValueError(f"image of spatial shape {image.shape[:3]}, Blender built for {self.shape}")
    if not any(a or b for a, b in self.pad_widths):
      return image
    return np.pad(image, self.pad_widths + [(0, 0)] * (image.ndim - 3))

  def window(self, padded: np.ndarray, i: int) -> np.ndarray:
    """The i-th window (*roi, C) of a padded image."""
    return padded[self._slices(i)]

  def add(self, i: int, logits: np.ndarray) -> None:
    """logits (*roi, K) of window i."""
    if self._added[i]:
      raise ValueError(f"window {i} was added twice")
    if self._sum is None:
      self._sum = np.zeros((*self.padded_shape, self.num_classes), np.float32)
      self._norm = np.zeros(self.padded_shape, np.float32)
    s = self._slices(i)
    self._sum[s] += self._weights[..., None] * np.asarray(logits, np.float32)
    self._norm[s] += self._weights
    self._added[i] = True

  def done(self) -> bool:
    """Whether every window has been added."""
    return bool(self._added.all())

  def result(self) -> np.ndarray:
    """(X, Y, Z, K) float32: the weighted mean of the windows, padding removed."""
    if not self.done():
      raise ValueError(f"{int((~self._added).sum())} of {len(self.starts)} windows not added yet")
    crop = tuple(slice(a, a + s) for (a, _), s in zip(self.pad_widths, self.shape))
    return (self._sum[crop] / self._norm[crop][..., None]).astype(np.float32)
