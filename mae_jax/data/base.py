"""What every data source provides, whatever its modality, and the arithmetic they share.

A source is a dataset with named splits: images (sources.py), segmentation images and label
maps (seg_sources.py), series windows (series.py), table rows (tables.py), volumes
(volumes.py). The runner reports and sizes any of them through `DataSource` alone.
This module imports no TensorFlow.
"""

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class DataSource(Protocol):
  """A dataset with named splits.

  name: how the dataset is named in logs (e.g. "digits", "ETTh1").
  splits: its split names, in the dataset's order.
  split_sizes: split -> number of examples: images for image and segmentation sources,
    windows for series, rows for tables, volumes for volumes.
  describe(): one line for the log, e.g. "{'train': 1437, 'test': 360}, 10 classes".
  """

  # Read-only properties, so that frozen dataclasses satisfy the protocol.
  @property
  def name(self) -> str: ...

  @property
  def splits(self) -> tuple[str, ...]: ...

  @property
  def split_sizes(self) -> dict[str, int]: ...

  def describe(self) -> str: ...


@runtime_checkable
class Selectable(Protocol):
  """A source whose training examples can be cut to a subset (config.data.labels) and split
  into training and a held-out slice (config.<stage>.lr_grid).

  train_split: the split stages train on.
  train_classes(): int (N,) the class of each training example, to stratify by; None when an
    example has no one class.
  examples_for_batch(batch_size): the fewest training examples a batch of batch_size needs
    (a batch of crops can come from one volume).
  view(train, heldout=None): the same source with its train split cut to the sorted indices
    `train` (into the train split); with `heldout`, those training examples as its eval split.
  """

  @property
  def train_split(self) -> str: ...

  def train_classes(self) -> np.ndarray | None: ...

  def num_examples(self, split: str) -> int: ...

  def examples_for_batch(self, batch_size: int) -> int: ...

  def view(self, train: np.ndarray, heldout: np.ndarray | None = None) -> "Selectable": ...


def view_split(split: str, indices: np.ndarray, total: int) -> str:
  """The name of a view's training split: e.g. "train[600 of 60000]"."""
  return f"{split}[{len(indices)} of {total}]"


def heldout_split(split: str, indices: np.ndarray) -> str:
  """The name of a view's held-out slice of its training split: e.g. "train[540 held out]"."""
  return f"{split}[{len(indices)} held out]"


def view_parts(train_split: str, total: int, train: np.ndarray,
               heldout: np.ndarray | None = None) -> dict[str, np.ndarray]:
  """The splits a Selectable.view adds, name -> int64 indices into `train_split` (of `total`
  examples): the cut training split first, then the held-out slice when there is one."""
  parts = {view_split(train_split, train, total): np.asarray(train, np.int64)}
  if heldout is not None:
    parts[heldout_split(train_split, heldout)] = np.asarray(heldout, np.int64)
  return parts


def view_fields(source: DataSource, parts: dict[str, np.ndarray], eval_split: str
                ) -> dict[str, object]:
  """The dataclass fields a view replaces: its split sizes, and its train and eval splits
  (the held-out slice, if any, becomes the eval split; else `eval_split` stays)."""
  names = list(parts)
  return {"split_sizes": {**source.split_sizes, **{k: len(v) for k, v in parts.items()}},
          "train_split": names[0], "eval_split": names[1] if len(names) > 1 else eval_split}


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
  """Whole global batches of `batch_size` in one pass over `num_examples` (the remainder is
  dropped); at least 1, so that a split smaller than one batch still counts one step."""
  if batch_size < 1:
    raise ValueError(f"batch_size must be positive, got {batch_size}")
  return max(num_examples // batch_size, 1)


def per_shard(batch_size: int, num_shards: int) -> int:
  """One shard's (process's) rows of a global batch; validation makes it divide evenly."""
  return batch_size // num_shards


def split_size(name: str, sizes: dict[str, int], split: str) -> int:
  """sizes[split]; ValueError naming the dataset's splits if it has no `split` (every source's
  num_examples)."""
  if split not in sizes:
    raise ValueError(f"{name} has no split {split!r}; its splits are {sorted(sizes)}")
  return sizes[split]
