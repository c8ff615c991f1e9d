"""Which training examples keep their labels (config.data.labels), and the held-out slice a
stage's learning rate is chosen on (config.<stage>.lr_grid): seeded index sets, stratified by
class where the source has classes. Pure numpy; no TensorFlow.

Both are drawn from config.seed alone, never from a stage's or a run's name, so a stage and its
random-init twin see the same labelled examples and the same held-out slice; neither ever
touches the eval (test) split.
"""

import numpy as np

ALL = 1.0   # config.data.labels: every training label


def count(spec: float, n: int, field: str = "config.data.labels") -> int:
  """How many of n training examples keep their labels: spec in (0, 1] is a fraction (rounded,
  at least 1), spec > 1 a count (a whole number, at most n). ValueError naming `field`."""
  if spec <= 0:
    raise ValueError(f"{field}={spec} must be a fraction in (0, 1] or a count > 1")
  if spec <= 1:
    return max(1, int(round(spec * n)))
  if spec != int(spec):
    raise ValueError(f"{field}={spec}: a count of labelled examples must be a whole number "
                     f"(a fraction is at most 1)")
  if spec > n:
    raise ValueError(f"{field}={int(spec)} asks for more labelled examples than the "
                     f"{n} of the training split")
  return int(spec)


def _per_class(sizes: np.ndarray, k: int) -> np.ndarray:
  """How many of each class to keep, summing to k: proportional to `sizes` (largest
  remainders), every present class at least one while k allows it, never more than it has."""
  present = sizes > 0
  quota = np.zeros_like(sizes)
  if k >= present.sum():
    quota[present] = 1
  room = sizes - quota
  rest = k - quota.sum()
  share = room / max(room.sum(), 1) * rest
  base = np.minimum(np.floor(share).astype(sizes.dtype), room)
  quota += base
  rest = k - quota.sum()
  # Largest remainders first, ties to the smaller class id; classes already full are skipped.
  order = np.lexsort((np.arange(len(sizes)), -(share - base)))
  while rest > 0:
    for c in order:
      if rest and quota[c] < sizes[c]:
        quota[c] += 1
        rest -= 1
  return quota


def subset(n: int, k: int, seed: int, labels: np.ndarray | None = None) -> np.ndarray:
  """k of range(n), sorted: a seeded draw, stratified over `labels` (n,) when given (each
  class in proportion, every class at least once where k allows)."""
  if not 0 < k <= n:
    raise ValueError(f"cannot keep {k} of {n} examples")
  rng = np.random.default_rng([seed, 0x1ABE1])
  if labels is None:
    return np.sort(rng.permutation(n)[:k])
  labels = np.asarray(labels)
  if labels.shape != (n,):
    raise ValueError(f"labels {labels.shape} do not fit {n} examples")
  classes, inverse = np.unique(labels, return_inverse=True)
  quota = _per_class(np.bincount(inverse, minlength=len(classes)), k)
  order = rng.permutation(n)      # one permutation, read per class: seeded, order-free
  picked = [order[inverse[order] == c][:quota[c]] for c in range(len(classes))]
  return np.sort(np.concatenate(picked))


def holdout(indices: np.ndarray, fraction: float, seed: int, labels: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
  """(train, held out) of `indices`: `fraction` of them (at least 1, at most all but 1) held
  out, stratified over `labels` (of each index, aligned with `indices`) when given."""
  indices = np.asarray(indices)
  if len(indices) < 2:
    raise ValueError(f"{len(indices)} training example(s) cannot spare a held-out slice")
  k = min(max(1, int(round(fraction * len(indices)))), len(indices) - 1)
  held = subset(len(indices), k, seed + 7919, labels)
  keep = np.ones(len(indices), bool)
  keep[held] = False
  return indices[keep], indices[held]
