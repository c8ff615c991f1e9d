"""Unlabeled image folders ("images:/path"): any depth, a held-out slice, unreadable files
skipped, the classifier stages refused; pretraining and reconstructions run on one."""

import json
import os

import numpy as np
import pytest

from mae_jax import experiment
from mae_jax.data import images
from mae_jax.data import pipeline
from mae_jax.data import sources
from mae_jax.data.augment import Augment
from mae_jax.errors import ConfigError, DatasetUnavailableError
from tests.helpers import load_config
from tests.test_imagefolder import _write


def make_tree(root: str, count: int = 40, size: tuple[int, int] = (36, 44)) -> list[str]:
  """`count` JPEGs and PNGs at depths 0-2 (a few with upper-case extensions), a text file, and
  two files with image extensions that are not images. Returns the image paths, sorted."""
  rng = np.random.default_rng(0)
  paths = []
  for k in range(count):
    folder = [root, os.path.join(root, "a"), os.path.join(root, "b", f"c{k % 3}")][k % 3]
    ext = (".jpg", ".png", ".JPEG")[k % 3]
    path = os.path.join(folder, f"img{k:03d}{ext}")
    _write(path, rng.integers(0, 256, size + (3,), np.uint8))
    paths.append(path)
  with open(os.path.join(root, "a", "notes.txt"), "w") as f:
    f.write("not an image, and not named like one")
  for bad in ("broken.jpg", os.path.join("b", "empty.png")):
    with open(os.path.join(root, bad), "wb") as f:
      f.write(b"" if bad.endswith(".png") else b"this is not a JPEG")
  return sorted(paths, key=lambda p: os.path.relpath(p, root).split(os.sep))


def test_every_image_at_any_depth_in_sorted_order(tmp_path):
  good = make_tree(str(tmp_path), count=9)
  listed = images.list_images(str(tmp_path))
  assert len(listed) == 11 and not any(p.endswith(".txt") for p in listed)
  assert listed == sorted(listed, key=lambda p: os.path.relpath(p, tmp_path).split(os.sep))
  lines = []
  kept = images.readable(listed, log=lines.append)
  assert kept == good
  assert len(lines) == 1 and lines[0].startswith("skipped 2 of 11 files that are not readable")
  assert "broken.jpg" in lines[0] and "empty.png" in lines[0]


def test_missing_and_empty_folders_are_clear_errors(tmp_path):
  with pytest.raises(DatasetUnavailableError, match="does not exist"):
    sources.get_source(f"images:{tmp_path}/nowhere")
  (tmp_path / "empty" / "sub").mkdir(parents=True)
  (tmp_path / "empty" / "sub" / "readme.txt").write_text("no images here")
  with pytest.raises(DatasetUnavailableError, match="holds no images"):
    sources.get_source(f"images:{tmp_path}/empty")


def test_holdout_is_a_bounded_evenly_spread_slice():
  held = images.holdout_indices(1000, 0.01, 5000)
  np.testing.assert_array_equal(held, np.round(np.linspace(0, 999, 10)).astype(int))
  assert len(images.holdout_indices(10**6, 0.01, 5000)) == 5000
  assert len(images.holdout_indices(50, 0.01, 5000)) == 1      # at least one
  assert len(images.holdout_indices(1, 0.5, 5000)) == 0        # but never every image
  assert len(images.holdout_indices(100, 0.0, 5000)) == 1


def test_source_splits_files_and_labels(tmp_path):
  good = make_tree(str(tmp_path), count=40)
  source = sources.get_source(f"images:{tmp_path}", holdout=0.1, holdout_max=3)
  assert source.num_classes == 0
  assert source.split_sizes == {"train": 37, "holdout": 3}
  assert (source.train_split, source.eval_split) == ("train", "holdout")
  held = source.files("holdout")
  assert held == [good[i] for i in images.holdout_indices(40, 0.1, 3)]
  assert sorted(source.files("train") + held) == sorted(good)
  example = next(source.load("holdout").as_numpy_iterator())
  assert example["image"].shape == (36, 44, 3) and example["label"] == 0


def test_classifier_stages_refuse_unlabeled_images():
  config = load_config("digits.py", "smoke")
  config.data.dataset = "images:/data/photos"
  with pytest.raises(ConfigError, match="has no labels: it serves pretrain and visualize only, "
                                        "but config.stages/baselines ask for linprobe"):
    experiment.validate(config)
  config.stages, config.baselines = "pretrain,visualize", ""
  experiment.validate(config)
  config.baselines = "raw_pixels"
  with pytest.raises(ConfigError, match="ask for raw_pixels"):
    experiment.validate(config)


@pytest.mark.slow
def test_pretrain_and_visualize_on_an_unlabeled_folder(tmp_path, capsys):
  make_tree(str(tmp_path / "photos"), count=40)
  config = load_config("digits.py", "smoke")
  config.data.dataset = f"images:{tmp_path / 'photos'}"
  config.data.mean, config.data.std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
  config.data.holdout, config.data.eval_batch_size = 0.1, 8
  config.stages, config.baselines = "pretrain,visualize", ""
  config.visualize.num_images = 4
  summary = experiment.run(config, str(tmp_path / "run"))
  assert "skipped 2 of 42 files that are not readable images" in capsys.readouterr().out
  pretrain = summary["pretrain"]
  assert 0 < pretrain["loss"] < 10 and 0 < pretrain["eval_loss"] < 10
  assert summary["visualize"]["images"] == 4
  with open(tmp_path / "run" / "pretrain" / "metrics.jsonl") as f:
    evals = [json.loads(line) for line in f if '"split": "eval"' in line]
  assert evals and evals[-1]["examples"] == 4


def _photo_folder(root: str, count: int = 12) -> None:
  """Crops of scikit-learn's sample photos, of varied sizes, as JPEG and PNG files."""
  from sklearn.datasets import load_sample_images  # pylint: disable=g-import-not-at-top
  photos = load_sample_images().images
  rng = np.random.default_rng(1)
  for k in range(count):
    h, w = rng.integers(24, 90, 2)
    top, left = rng.integers(0, 300, 2)
    crop = np.ascontiguousarray(photos[k % 2][top:top + h, left:left + w])
    _write(os.path.join(root, f"d{k % 2}", f"{k:02d}" + (".png" if k % 4 == 3 else ".jpg")), crop)


@pytest.mark.parametrize("augment", [False, True])
def test_streamed_batches_equal_the_cached_ones_and_resume(tmp_path, augment):
  _photo_folder(str(tmp_path))
  source = sources.get_source(f"images:{tmp_path}", holdout=0.0)
  options = Augment(rand_augment_layers=2 if augment else 0)
  args = dict(batch_size=4, image_size=16, crop_scale=(0.2, 1.0), hflip=True, seed=3,
              options=options, layout="WCH")
  cached = pipeline.train_batches(source, "train", **args)
  streamed = pipeline.train_batches(source, "train", stream=True, **args)
  for _, a, b in zip(range(7), cached, streamed):     # past the end of the first epoch
    np.testing.assert_array_equal(a["image"], b["image"])
  resumed = next(pipeline.train_batches(source, "train", stream=True, start_step=7, **args))
  np.testing.assert_array_equal(resumed["image"], next(cached)["image"])


_STREAM_PROGRAM = """
import os, sys
import numpy as np
import tensorflow as tf
from mae_jax.data import pipeline, reading, sources

def peak_rss_mb():
  with open("/proc/self/status") as f:
    return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024

root, links = sys.argv[1], int(sys.argv[2])
noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), np.uint8)   # ~0.4 MB
tf.io.write_file(f"{root}/0/photo.jpg", tf.io.encode_jpeg(noise, quality=95))
for i in range(1, links):   # one file's bytes under many names: gigabytes of split, no disk
  os.makedirs(f"{root}/{i // 1000}", exist_ok=True)
  os.link(f"{root}/0/photo.jpg", f"{root}/{i // 1000}/photo{i}.jpg")
source = sources.get_source(f"images:{root}", holdout=0.0)
size_gb = source.random_access("train").num_bytes() / 2**30
assert reading.streams(source, "train", "auto", cache_max_gb=1.0)
batches = pipeline.train_batches(source, "train", batch_size=32, image_size=16,
                                 crop_scale=(0.05, 0.1), hflip=True, seed=0, stream=True)
next(batches)
start = peak_rss_mb()
steps = source.split_sizes["train"] // 32
for _ in range(steps - 1):
  next(batches)
print(f"{size_gb:.2f} {steps} {start:.0f} {peak_rss_mb():.0f}", flush=True)
del batches   # before the interpreter's shutdown: a live tf.data generator thread can hang it
"""


@pytest.mark.slow
def test_streaming_a_split_several_times_the_memory_it_uses(tmp_path):
  """An epoch over ~2.7 GB of JPEGs (8,000 of ~0.34 MB, ImageNet-like sizes) streams in a process
  whose peak resident memory grows by less than 200 MB after the first batch and stays under
  half the split (the in-memory path would hold every file's bytes)."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  from tests.helpers import REPO  # pylint: disable=g-import-not-at-top
  proc = subprocess.run([sys.executable, "-c", _STREAM_PROGRAM, str(tmp_path / "big"), "8000"],
                        cwd=REPO, capture_output=True, text=True, timeout=600,
                        env=dict(os.environ, XLA_FLAGS=""))
  assert proc.returncode == 0, proc.stderr[-3000:]
  size_gb, steps, start_mb, end_mb = (float(x) for x in proc.stdout.split()[-4:])
  assert size_gb > 2.5 and steps == (8000 - 1) // 32   # one image held out
  assert end_mb - start_mb < 200, (start_mb, end_mb)
  assert end_mb < size_gb * 1024 / 2


def test_prepared_shards_give_the_folders_examples_and_batches(tmp_path):
  from mae_jax import prepare  # pylint: disable=g-import-not-at-top
  root, out = str(tmp_path / "photos"), str(tmp_path / "packed")
  make_tree(root, count=30)
  lines = []
  manifest = prepare.prepare(root, out, shard_size=8, workers=2, log=lines.append)
  assert manifest["num_images"] == 30 and len(manifest["shards"]) == 4
  assert any(line.startswith("[4/4] ") for line in lines)
  folder = sources.get_source(f"images:{root}", holdout=0.1)
  packed = sources.get_source(f"images:{out}", holdout=0.1)
  assert packed.split_sizes == folder.split_sizes == {"train": 27, "holdout": 3}
  for split in ("train", "holdout"):
    for a, b in zip(folder.load(split).as_numpy_iterator(), packed.load(split).as_numpy_iterator()):
      np.testing.assert_array_equal(a["image"], b["image"])
  args = dict(batch_size=4, image_size=16, crop_scale=(0.2, 1.0), hflip=True, seed=1,
              stream=True)
  for _, a, b in zip(range(3), pipeline.train_batches(folder, "train", **args),
                     pipeline.train_batches(packed, "train", **args)):
    np.testing.assert_array_equal(a["image"], b["image"])

  # A rerun after a crash writes only the missing shards; a complete one writes nothing.
  os.remove(os.path.join(out, prepare.MANIFEST))
  os.remove(os.path.join(out, manifest["shards"][2]["file"]))
  lines.clear()
  assert prepare.prepare(root, out, shard_size=8, workers=1, log=lines.append) == manifest
  assert "3 already written" in lines[1] and sum(l.startswith("[") for l in lines) == 1
  lines.clear()
  prepare.prepare(root, out, log=lines.append)
  assert lines[-1] == f"{out} is prepared already: 30 images"
  # Other images into the same folder are refused.
  make_tree(str(tmp_path / "other"), count=5)
  with pytest.raises(ValueError, match="holds a preparation of other images"):
    prepare.prepare(str(tmp_path / "other"), out, log=lines.append)


@pytest.mark.slow
def test_streamed_pretraining_resumed_mid_epoch_equals_an_uninterrupted_run(tmp_path, capsys):
  import shutil  # pylint: disable=g-import-not-at-top
  from flax import traverse_util  # pylint: disable=g-import-not-at-top
  from mae_jax import weights  # pylint: disable=g-import-not-at-top
  make_tree(str(tmp_path / "photos"), count=40)
  config = load_config("digits.py", "smoke")
  config.data.dataset, config.data.cache = f"images:{tmp_path / 'photos'}", "stream"
  config.data.holdout, config.data.eval_batch_size = 0.1, 8
  config.stages, config.baselines = "pretrain", ""
  config.pretrain.update(batch_size=8, num_steps=7, checkpoint_every_steps=3)   # 4 per epoch

  def params(workdir):
    loaded, _ = weights.restore_export(os.path.join(workdir, "pretrain", "export"))
    return traverse_util.flatten_dict(loaded, sep="/")

  experiment.run(config, str(tmp_path / "once"))
  # The same run stopped after step 6 (its last checkpoint mid-epoch 2), then run again.
  resumed = str(tmp_path / "resumed")
  experiment.run(config, resumed)
  stage = os.path.join(resumed, "pretrain")
  shutil.rmtree(os.path.join(stage, "checkpoints", "7"))
  shutil.rmtree(os.path.join(stage, "export"))
  os.remove(os.path.join(stage, "result.json"))
  os.remove(os.path.join(resumed, "summary.json"))
  capsys.readouterr()
  experiment.run(config, resumed)
  assert "[pretrain] resuming from step 6" in capsys.readouterr().out
  a, b = params(str(tmp_path / "once")), params(resumed)
  assert a.keys() == b.keys()
  assert max(float(np.max(np.abs(a[k] - b[k]))) for k in a) <= 1e-6
