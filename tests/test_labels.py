"""Label-scarce runs and per-arm learning rates (config.data.labels, config.<stage>.lr_grid):
the subset is stratified, seeded and the same for both arms; the lr is chosen on a held-out
slice of the training examples and never reads the eval split."""

import dataclasses
import json
import os

import numpy as np
import pytest

from mae_jax import experiment, registry, selection
from mae_jax.data import labels
from mae_jax.data.base import Selectable
from mae_jax.errors import ConfigError
from tests.helpers import load_config


def test_count_takes_fractions_and_counts_and_refuses_the_rest():
  assert labels.count(0.01, 60000) == 600
  assert labels.count(1.0, 60000) == 60000
  assert labels.count(0.0001, 100) == 1
  assert labels.count(25, 100) == 25
  for bad in (0, -1, 2.5, 101):
    with pytest.raises(ValueError, match="config.data.labels"):
      labels.count(bad, 100)


def test_subset_is_stratified_seeded_and_sorted():
  y = np.repeat(np.arange(10), [600] * 9 + [60])      # one rare class
  picked = labels.subset(len(y), 100, seed=3, labels=y)
  assert len(picked) == 100 == len(set(picked))
  assert np.all(np.diff(picked) > 0)
  counts = np.bincount(y[picked], minlength=10)
  assert counts[9] >= 1 and np.all(np.abs(counts[:9] - 100 * 600 / 5460) <= 1)
  assert np.array_equal(picked, labels.subset(len(y), 100, seed=3, labels=y))
  assert not np.array_equal(picked, labels.subset(len(y), 100, seed=4, labels=y))
  # Fewer than one per class: still k, never a class more than once beyond its share.
  few = labels.subset(len(y), 5, seed=0, labels=y)
  assert len(few) == 5 and np.bincount(y[few]).max() == 1
  plain = labels.subset(50, 7, seed=1)
  assert len(plain) == 7 and plain.max() < 50


def test_holdout_is_disjoint_and_covers_the_training_examples():
  idx = np.arange(10, 210)
  y = idx % 4
  train, held = labels.holdout(idx, 0.1, seed=0, labels=y)
  assert len(held) == 20 and len(train) == 180
  assert set(train) | set(held) == set(idx) and not set(train) & set(held)
  assert np.bincount(y[np.searchsorted(idx, held)]).tolist() == [5, 5, 5, 5]
  with pytest.raises(ValueError, match="cannot spare"):
    labels.holdout(np.arange(1), 0.1, seed=0)


def test_image_source_view_serves_exactly_the_chosen_training_examples():
  from mae_jax.data import sources  # pylint: disable=g-import-not-at-top  (TensorFlow)
  src = sources.get_source("digits")
  assert isinstance(src, Selectable)
  every = [ex["image"].numpy() for ex in src.load("train")]
  classes = src.train_classes()
  assert len(classes) == len(every) == src.num_examples("train")
  chosen, held = np.array([3, 10, 500, 1000]), np.array([7, 11])
  view = src.view(chosen, held)
  assert view.num_examples(view.train_split) == 4 and view.train_split == "train[4 of 1437]"
  got = [ex["image"].numpy() for ex in view.load(view.train_split)]
  assert all(np.array_equal(a, every[i]) for a, i in zip(got, chosen))
  assert np.array_equal(view.train_classes(), classes[chosen])
  # The held-out slice is the eval split now: training examples, never the test split's.
  got = [ex["image"].numpy() for ex in view.load(view.eval_split)]
  assert all(np.array_equal(a, every[i]) for a, i in zip(got, held))
  assert src.view(chosen).eval_split == "test"


def test_a_view_of_an_image_folder_reads_only_the_chosen_files(tmp_path):
  from mae_jax.data import sources  # pylint: disable=g-import-not-at-top  (TensorFlow)
  from tests.test_imagefolder import make_folder  # pylint: disable=g-import-not-at-top
  make_folder(str(tmp_path), per_class=4)
  src = sources.get_source(f"imagefolder:{tmp_path}")
  classes = src.train_classes()
  chosen, held = labels.holdout(labels.subset(len(classes), 6, 0, classes), 0.34, 0, None)
  view = src.view(chosen, held)
  assert view.files(view.train_split) == [src.files("train")[i] for i in chosen]
  every = [(ex["image"].numpy(), ex["label"].numpy()) for ex in src.load("train")]
  for split, picked in ((view.train_split, chosen), (view.eval_split, held)):
    got = list(view.load(split))
    assert len(got) == len(picked)
    for ex, i in zip(got, picked):
      assert np.array_equal(ex["image"].numpy(), every[i][0]) and ex["label"] == every[i][1]
  # The store serves the chosen examples by index (what streaming training reads).
  images, got_labels = view.random_access(view.train_split).read(np.arange(len(chosen)))
  assert got_labels.numpy().tolist() == classes[chosen].tolist()


def test_segmentation_source_view_reads_the_chosen_images():
  from mae_jax.data import seg_sources  # pylint: disable=g-import-not-at-top  (TensorFlow)
  src = seg_sources.seg_source("digits_seg")
  assert src.train_classes() is None
  view = src.view(np.array([2, 5]))
  read = view.reader(view.train_split)
  assert view.num_examples(view.train_split) == 2
  assert np.array_equal(read(np.int64(1))["label"].numpy(),
                        src.reader("train")(np.int64(5))["label"].numpy())


@dataclasses.dataclass(frozen=True)
class _FakeSource:
  """A Selectable over n examples that records which splits are read."""
  n: int
  train_split: str = "train"
  eval_split: str = "test"
  parts: tuple = ()
  name: str = "fake"

  @property
  def split_sizes(self):
    return {"train": self.n, "test": 5, **{k: len(v) for k, v in self.parts}}

  def num_examples(self, split):
    return self.split_sizes[split]

  def train_classes(self):
    return np.arange(self.n) % 2

  def examples_for_batch(self, batch_size):
    return batch_size

  def view(self, train, heldout=None):
    parts = (("rest", tuple(train)),) + ((("held", tuple(heldout)),) if heldout is not None
                                         else ())
    return dataclasses.replace(self, parts=parts, train_split="rest",
                               eval_split="held" if heldout is not None else self.eval_split)


def test_choose_lr_scores_trials_on_the_held_out_slice_with_the_runs_seeds():
  config = load_config("digits.py", "smoke")
  config.linprobe.lr_grid, config.linprobe.lr_search_steps = (0.1, 0.3, 1.0), 4
  stage = registry.for_config(config).stage("linprobe")
  seen = []

  def train(trial, source):
    seen.append((trial, source))
    assert source.eval_split == "held" and source.train_split == "rest"
    return {"top1": {0.1: 50.0, 0.3: 70.0, 1.0: float("nan")}[trial.overrides["linprobe.base_lr"]]}

  run = registry.Run("baselines/linprobe_random_init", "linprobe",
                     {"linprobe.init_from": "random"}, seed_name="linprobe")
  best, scores = selection.choose_lr(config, run, stage, _FakeSource(40), train)
  assert best == 0.3 and set(scores) == {0.1, 0.3, 1.0}
  for trial, source in seen:
    assert trial.seed_key == "linprobe"                       # the stage's own seeds
    assert trial.overrides["linprobe.init_from"] == "random"  # the arm's init kept
    assert trial.overrides["linprobe.num_steps"] == 4
    assert trial.folder.startswith("baselines/linprobe_random_init/lr_search/")
    held, rest = dict(source.parts)["held"], dict(source.parts)["rest"]
    assert len(held) == 4 and not set(held) & set(rest) and max(held + rest) < 40
  # The other arm holds out the very same slice.
  other = []
  selection.choose_lr(config, registry.Run("linprobe", "linprobe"), stage, _FakeSource(40),
                      lambda t, s: other.append(s) or {"top1": 1.0})
  assert other[0].parts == seen[0][1].parts


def test_bad_labels_and_lr_grids_are_one_line_config_errors():
  config = load_config("digits.py", "smoke")
  config.data.labels = 2.5
  with pytest.raises(ConfigError, match=r"config\.data\.labels=2\.5"):
    experiment.validate(config)
  config = load_config("digits.py", "smoke")
  config.pretrain.lr_grid = (1e-3,)
  with pytest.raises(ConfigError, match=r"config\.pretrain\.lr_grid: .* no score"):
    experiment.validate(config)
  config = load_config("digits.py", "smoke")
  config.finetune.lr_grid, config.finetune.lr_holdout = (1e-3,), 1.5
  with pytest.raises(ConfigError, match=r"config\.finetune\.lr_holdout"):
    experiment.validate(config)
  config = load_config("temps.py", "smoke")
  config.data.labels = 0.5
  src = registry.for_config(config).load_source(config)
  with pytest.raises(ConfigError, match=r"config\.data\.labels=0\.5: .* set it to 1\.0"):
    selection.labelled_source(config, src)


def test_a_label_scarce_run_with_lr_search_end_to_end(tmp_path):
  config = load_config("digits.py", "smoke")
  config.stages, config.baselines = "linprobe", "linprobe_random_init,raw_pixels"
  config.linprobe.init_from = "random"     # no pretraining: the two arms differ in nothing
  config.data.labels = 100
  config.linprobe.update(lr_grid=(0.1, 1.0), lr_search_steps=2, num_steps=2)
  summary = experiment.run(config, str(tmp_path))
  ours, twin = summary["linprobe"], summary["baselines"]["linprobe_random_init"]
  assert ours["train_examples"] == twin["train_examples"] == 100
  assert summary["baselines"]["raw_pixels"]["train_examples"] == 100
  assert set(ours["lr_search"]) == {"0.1", "1"} and ours["base_lr"] in (0.1, 1.0)
  # Both arms start from random init here, so their searches and results agree exactly.
  assert ours["lr_search"] == twin["lr_search"] and ours["top1"] == twin["top1"]
  for lr in ("0.1", "1"):
    with open(os.path.join(tmp_path, "linprobe", "lr_search", f"base_lr={lr}",
                           "result.json")) as f:
      assert json.load(f)["steps"] == 2
  with open(os.path.join(tmp_path, "results.md")) as f:
    md = f.read()
  assert "training examples" in md and "of 0.1 / 1" in md


def test_fewer_labelled_examples_than_a_batch_is_one_line(tmp_path):
  config = load_config("digits.py", "smoke")
  config.stages, config.baselines = "linprobe", ""
  config.linprobe.init_from = "random"
  config.data.labels = 10                     # the smoke batch is 16
  with pytest.raises(ConfigError, match=r"config\.linprobe\.batch_size=16 exceeds the 10 "
                                        r"labelled training examples"):
    experiment.run(config, str(tmp_path))
  config.data.labels = 17                     # 16 left after a held-out slice of 1: fits ...
  config.linprobe.update(lr_grid=(0.1,), lr_holdout=0.2)   # ... but not beside 3 held out
  with pytest.raises(ConfigError, match=r"exceeds the 14 training examples left beside the "
                                        r"held-out slice of config\.linprobe\.lr_holdout"):
    experiment.run(config, str(tmp_path))
