"""Tests for mae_jax.data: the datasets, the training order (seeded, resumable, sharded), the
augmentation and the padded evaluation pass. Offline: digits, toy sources and TFDS mock data."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from mae_jax import pixels
from mae_jax.data import augment
from mae_jax.data import base
from mae_jax.data import crops
from mae_jax.data import digits
from mae_jax.data import pipeline
from mae_jax.data import resize
from mae_jax.data import schedule
from mae_jax.data import seg_sources
from mae_jax.data import series
from mae_jax.data import sources
from mae_jax.data import tables
from mae_jax.data import tfds_prep
from mae_jax.errors import DatasetUnavailableError
from tests.helpers import as_pil_stores_it, mock_tfds

HALF = (0.5, 0.5, 0.5)          # mean and std, for random erasing's noise


def _source(images: np.ndarray, labels: np.ndarray, name: str = "toy") -> sources.Source:
  """A single-split ("train") Source over in-memory uint8 (N, H, W, 3) images."""
  labels = np.asarray(labels, np.int32)
  return sources.Source(
      name=name, num_classes=int(labels.max()) + 1, split_sizes={"train": len(labels)},
      train_split="train", eval_split="train",
      loader=lambda split: tf.data.Dataset.from_tensor_slices({"image": images, "label": labels}))


def _index_source(n: int = 50, height: int = 6, width: int = 4) -> sources.Source:
  """Example i is a constant image of value i with label i: any crop or resize still says i."""
  images = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None],
                           (n, height, width, 3)).copy()
  return _source(images, np.arange(n))


def _take(iterator, count: int) -> list[dict[str, np.ndarray]]:
  return list(itertools.islice(iterator, count))


def _digits_train(source, **kwargs):
  args = dict(batch_size=128, image_size=16, crop_scale=(0.2, 1.0), hflip=True, seed=0)
  return pipeline.train_batches(source, "train", **{**args, **kwargs})


@pytest.fixture(scope="module")
def digits_source() -> sources.Source:
  return sources.get_source("digits")


# ---- datasets ----------------------------------------------------------------------------------

def test_digits_split_is_fixed_and_stratified(digits_source):
  assert digits_source.split_sizes == {"train": 1437, "test": 360}
  assert (digits_source.num_classes, digits_source.train_split, digits_source.eval_split) == (
      10, "train", "test")
  (x_train, y_train), (x_test, y_test) = digits.digits_arrays().values()
  all_counts = np.bincount(np.concatenate([y_train, y_test]), minlength=10)
  test_counts = np.bincount(y_test, minlength=10)
  assert np.all(test_counts > 0) and np.all(all_counts - test_counts > 0)
  assert np.all(np.abs(test_counts - 0.2 * all_counts) <= 1)
  for images in (x_train, x_test):
    assert images.dtype == np.uint8 and images.shape[1:] == (32, 32, 3)
    assert np.array_equal(images[..., 0], images[..., 2])       # gray repeated to RGB
    assert images.max() == 255 and images.min() == 0             # 0..16 ink scaled to 0..255


def test_digits_are_a_smooth_upsampling_of_the_originals():
  from sklearn.datasets import load_digits
  from sklearn.model_selection import train_test_split
  raw = load_digits()
  order, _ = train_test_split(np.arange(len(raw.target)), test_size=0.2, stratify=raw.target,
                              random_state=0)
  originals = raw.images[order] * (255 / 16)
  x_train, _ = digits.digits_arrays()["train"]
  # Averaged over its 4x4 blocks, each 32x32 image is a blurred copy of its own 8x8 original.
  blocks = x_train[..., 0].reshape(-1, 8, 4, 8, 4).mean(axis=(2, 4))
  own = np.abs(blocks - originals).mean(axis=(1, 2))
  other = np.abs(blocks - np.roll(originals, 1, axis=0)).mean(axis=(1, 2))
  assert own.max() < 30 and np.median(own) < 0.5 * np.median(other)
  assert len(np.unique(x_train)) > 100       # interpolated, not nearest-neighbour blocks


def test_digits_load_is_uint8_rgb_in_fixed_order(digits_source):
  first = list(digits_source.load("test").as_numpy_iterator())
  again = list(digits_source.load("test").as_numpy_iterator())
  assert len(first) == 360
  assert first[0]["image"].dtype == np.uint8 and first[0]["image"].shape == (32, 32, 3)
  assert first[0]["label"].dtype == np.int32
  assert {int(ex["label"]) for ex in first} == set(range(10))
  assert all(np.array_equal(a["image"], b["image"]) and a["label"] == b["label"]
             for a, b in zip(first, again))
  with pytest.raises(ValueError, match="no split 'validation'"):
    digits_source.load("validation")


def test_gray_and_alpha_images_become_rgb():
  gray = np.arange(6, dtype=np.uint8).reshape(2, 3, 1)
  rgba = np.concatenate([np.repeat(gray, 3, axis=-1), np.full_like(gray, 255)], axis=-1)
  expected = np.repeat(gray, 3, axis=-1)
  for image in (gray, rgba):
    np.testing.assert_array_equal(tfds_prep._to_rgb(tf.constant(image)), expected)
    # Channel count only known at run time, as for TFDS images of shape (None, None, None).
    dynamic = tf.function(tfds_prep._to_rgb, input_signature=[
        tf.TensorSpec([None, None, None], tf.uint8)])
    np.testing.assert_array_equal(dynamic(tf.constant(image)), expected)


def test_unknown_dataset_name_raises_a_clear_value_error():
  for name in ("no_such_dataset_xyz", "tfds:no_such_dataset_xyz"):
    with pytest.raises(ValueError, match="unknown dataset 'no_such_dataset_xyz'.*'digits', "
                       "'imagefolder:/path/to/root', 'images:/path/to/root' \\(unlabeled\\), "
                       "'oxford_iiit_pet', 'tiny_imagenet', or any "
                       "TFDS image-classification dataset name as 'tfds:NAME'"):
      sources.get_source(name)


def test_download_failure_without_network_raises_runtime_error(tmp_path, monkeypatch):
  offline = ConnectionError("Failed to resolve 'storage.googleapis.com'")

  def download_and_prepare(self, *args, **kwargs):
    raise offline

  monkeypatch.setattr(tfds_prep.requests, "head", lambda *args, **kwargs: None)  # host answers
  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", download_and_prepare)
  with pytest.raises(RuntimeError, match="'mnist'.*--config.data.data_dir.*TFDS_DATA_DIR") as err:
    sources.get_source("mnist", data_dir=str(tmp_path))
  assert err.value.__cause__ is offline


def test_offline_pets_names_the_archives_and_the_manual_dir(tmp_path, monkeypatch):
  def refuse(*args, **kwargs):
    raise tfds_prep.requests.ConnectionError("Name or service not known")

  monkeypatch.setattr(tfds_prep.requests, "head", refuse)
  with pytest.raises(DatasetUnavailableError) as err:
    sources.get_source("tfds:oxford_iiit_pet", data_dir=str(tmp_path))
  message = str(err.value)
  for part in ("'oxford_iiit_pet'", f"{tmp_path}/downloads/manual/images.tar.gz",
               f"{tmp_path}/downloads/manual/annotations.tar.gz", "oxford_iiit_pet/<version>/",
               "gs://tfds-data/datasets", "--config.data.data_dir"):
    assert part in message


@pytest.fixture
def mock_pets(tmp_path):
  """TFDS oxford_iiit_pet mocked with 10 random images of random sizes per split."""
  with mock_tfds("oxford_iiit_pet", str(tmp_path), 10, ("train", "test")) as data_dir:
    yield data_dir


def test_oxford_iiit_pet_through_mock_data(mock_pets):
  source = sources.get_source("oxford_iiit_pet", data_dir=mock_pets)
  assert (source.num_classes, source.split_sizes) == (37, {"train": 10, "test": 10})
  assert (source.train_split, source.eval_split) == ("train", "test")
  examples = list(source.load("train").as_numpy_iterator())
  assert sorted(examples[0]) == ["image", "label"]
  assert all(ex["image"].dtype == np.uint8 and ex["image"].shape[2] == 3 for ex in examples)
  assert len({ex["image"].shape for ex in examples}) > 1        # images of varying size

  train = _take(pipeline.train_batches(source, "train", batch_size=4, image_size=32,
                                       crop_scale=(0.2, 1.0), hflip=True, seed=0), 3)                  # 2 steps per epoch: crosses one
  for batch in train:
    assert batch["image"].shape == (4, 32, 32, 3) and batch["image"].dtype == np.uint8
    assert np.all((0 <= batch["label"]) & (batch["label"] < 37))
  evals = list(pipeline.eval_batches(source, "test", batch_size=4, image_size=32))
  assert len(evals) == 3 and sum(b["mask"].sum() for b in evals) == 10
  labels = np.concatenate([b["label"] for b in evals])[:10]
  assert np.array_equal(labels, [ex["label"] for ex in source.load("test").as_numpy_iterator()])


# ---- training order ----------------------------------------------------------------------------

def test_train_batches_shapes_and_dtypes(digits_source):
  batch = next(_digits_train(digits_source))
  assert batch["image"].shape == (128, 16, 16, 3) and batch["image"].dtype == np.uint8
  assert batch["label"].shape == (128,) and batch["label"].dtype == np.int32
  assert batch["image"].min() < 10 and batch["image"].max() > 245   # background and ink
  assert set(np.unique(batch["label"])) <= set(range(10))
  assert pipeline.num_train_steps_per_epoch(digits_source, "train", 128) == 11


def test_normalize_is_per_channel_for_uint8_and_float_pixels():
  # What the train step does to the pipeline's pixels: uint8 (most stages) or float32 (mixing).
  mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)   # ImageNet's, unequal per channel
  image = np.random.default_rng(0).integers(0, 256, (2, 5, 7, 3)).astype(np.uint8)
  expected = (image / 255.0 - np.array(mean)) / np.array(std)
  for x in (image, image.astype(np.float32), jnp.asarray(image)):
    out = pixels.normalize(x, mean, std)
    assert out.dtype == np.float32 and out.shape == (2, 5, 7, 3)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    # Host arrays stay on the host (the scikit-learn baseline); device arrays on the device.
    assert isinstance(out, np.ndarray) == isinstance(x, np.ndarray)


def test_wch_layout_holds_the_same_pixels_in_every_pipeline(digits_source):
  """layout "WCH" (config.data.batch_layout's default) is the "HWC" batch, transposed."""
  to_wch = lambda x: np.transpose(x, (0, 2, 3, 1))               # noqa: E731
  mixing = augment.Augment(rand_augment_layers=2, random_erase_prob=0.5, mixup_alpha=0.8,
                           cutmix_alpha=1.0)
  for options in (augment.Augment(), mixing):                       # uint8, and float32 fine-tune
    hwc, wch = (_take(_digits_train(digits_source, seed=5, options=options, layout=layout,
                                    mean=HALF, std=HALF), 2) for layout in ("HWC", "WCH"))
    for a, b in zip(hwc, wch):
      assert b["image"].shape == (128, 16, 3, 16) and b["image"].dtype == a["image"].dtype
      np.testing.assert_array_equal(b["image"], to_wch(a["image"]))
      np.testing.assert_array_equal(b["label"], a["label"])
  # Evaluation, padding included (360 test digits in batches of 100).
  hwc, wch = (list(pipeline.eval_batches(digits_source, "test", batch_size=100, image_size=16,
                                         crop_ratio=0.7, layout=layout))
              for layout in ("HWC", "WCH"))
  assert len(wch) == 4 and not wch[-1]["image"][60:].any()
  for a, b in zip(hwc, wch):
    np.testing.assert_array_equal(b["image"], to_wch(a["image"]))
  # The train step's normalisation puts the axes back.
  mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
  np.testing.assert_array_equal(pixels.normalize(wch[0]["image"], mean, std, "WCH"),
                                pixels.normalize(hwc[0]["image"], mean, std))
  assert pixels.LAYOUTS == resize.LAYOUTS
  with pytest.raises(ValueError, match="layout must be one of"):
    _digits_train(digits_source, layout="CHW")
  with pytest.raises(ValueError, match="pass both"):               # erasing needs mean and std
    _digits_train(digits_source, options=mixing)
  with pytest.raises(ValueError, match="layout must be one of"):
    pixels.normalize(wch[0]["image"], mean, std, "CHW")


def test_same_seed_same_stream_other_seed_differs(digits_source):
  first = _take(_digits_train(digits_source, seed=3), 2)
  again = _take(_digits_train(digits_source, seed=3), 2)
  other = _take(_digits_train(digits_source, seed=4), 2)
  for a, b, c in zip(first, again, other):
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["label"], b["label"])
    assert not np.array_equal(a["label"], c["label"])
    assert not np.allclose(a["image"], c["image"])


def test_start_step_resumes_the_stream_across_an_epoch_boundary(digits_source):
  fresh = _take(_digits_train(digits_source), 14)                # 11 steps per epoch
  resumed = _take(_digits_train(digits_source, start_step=9), 5)
  for a, b in zip(fresh[9:], resumed):
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["label"], b["label"])


def test_each_epoch_visits_the_seeded_permutation_once():
  source = _index_source(50)
  # 6 steps of 8 per epoch (2 examples dropped); augmentation on: constant images survive it.
  batches = _take(pipeline.train_batches(source, "train", batch_size=8, image_size=5,
                                         crop_scale=(0.1, 1.0), hflip=True, seed=7), 12)
  for epoch in range(2):
    labels = np.concatenate([b["label"] for b in batches[6 * epoch:6 * epoch + 6]])
    assert len(set(labels)) == 48
    np.testing.assert_array_equal(labels, schedule.epoch_permutation(7, epoch, 50)[:48])
  for batch in batches:
    np.testing.assert_array_equal(batch["image"], np.broadcast_to(
        batch["label"][:, None, None, None], batch["image"].shape))


def test_far_start_step_is_computed_not_replayed():
  """start_step=10**9 returns at once with the scheduled examples: nothing is skipped through."""
  source = _index_source(50)
  step = 10**9
  batch = next(pipeline.train_batches(source, "train", batch_size=8, image_size=4,
                                      crop_scale=(1.0, 1.0), hflip=False, seed=1,
                                      start_step=step))
  epoch, i = divmod(step, 6)
  expected = schedule.epoch_permutation(1, epoch, 50)[8 * i:8 * i + 8]
  np.testing.assert_array_equal(batch["label"], expected)


def test_shards_concatenate_to_the_unsharded_global_batch(digits_source):
  whole = _take(_digits_train(digits_source, batch_size=48, start_step=2), 3)
  shards = [_take(_digits_train(digits_source, batch_size=16, num_shards=3, shard_index=k,
                                start_step=2), 3) for k in range(3)]
  for step, batch in enumerate(whole):
    for key in ("image", "label"):
      np.testing.assert_array_equal(np.concatenate([s[step][key] for s in shards]), batch[key])


def test_train_schedule_shards_partition_each_global_batch():
  parts = [next(schedule.train_schedule(30, seed=5, batch_size=2, num_shards=3, shard_index=k,
                                        start_step=1)) for k in range(3)]
  # 30 // 6 = 5 steps per epoch; from step 1 on, 4 steps remain in epoch 0.
  indices = np.stack([p[0].reshape(4, 2) for p in parts], axis=1).reshape(4, 6)
  np.testing.assert_array_equal(indices, schedule.epoch_permutation(5, 0, 30)[6:].reshape(4, 6))
  positions = np.stack([p[1].reshape(4, 2) for p in parts], axis=1).reshape(-1)
  np.testing.assert_array_equal(positions, np.arange(6, 30))


def test_steps_per_epoch_counts_whole_batches_and_at_least_one(digits_source):
  assert base.steps_per_epoch(1437, 128) == 11                   # remainder dropped
  assert base.steps_per_epoch(1536, 128) == 12
  assert base.steps_per_epoch(5, 8) == 1                         # never 0
  with pytest.raises(ValueError, match="batch_size must be positive"):
    base.steps_per_epoch(10, 0)
  for batch in (1, 7, 128, 1437):
    assert pipeline.num_train_steps_per_epoch(digits_source, "train", batch) == 1437 // batch


def test_fewer_examples_than_a_global_batch_is_a_clear_error():
  source = _index_source(10)
  with pytest.raises(ValueError, match="toy/train has 10 examples, fewer than one global batch "
                     "of 4 x 3 shards"):
    pipeline.train_batches(source, "train", batch_size=4, num_shards=3, image_size=4,
                           crop_scale=(1.0, 1.0), hflip=False, seed=0)
  with pytest.raises(ValueError, match="10 examples are fewer than one global batch of 4 x 3"):
    next(schedule.train_schedule(10, seed=0, batch_size=4, num_shards=3))


def test_bad_crop_geometry_is_a_clear_error():
  source = _index_source(10)
  args = dict(batch_size=2, image_size=4, hflip=False, seed=0)
  with pytest.raises(ValueError, match="crop_scale must satisfy 0 < min <= max"):
    pipeline.train_batches(source, "train", crop_scale=(0.5, 0.2), **args)
  with pytest.raises(ValueError, match="crop_ratio must satisfy 0 < min <= max"):
    pipeline.train_batches(source, "train", crop_scale=(0.2, 0.5), crop_ratio=(0.0, 1.0), **args)


def test_crop_flip_windows_are_random_resized_crop_windows():
  rng = np.random.default_rng(3)
  sizes = rng.integers(1, 300, (64, 2))
  uniforms = rng.random((64, 4, 10))
  geometry = crops.CropFlip(32, (0.08, 1.0), (0.5, 2.0))
  np.testing.assert_array_equal(
      geometry.windows(sizes, uniforms),
      crops.random_resized_crop_windows(sizes, uniforms, scale=(0.08, 1.0), ratio=(0.5, 2.0)))


# ---- augmentation ------------------------------------------------------------------------------

def _asymmetric_image(size: int = 6) -> np.ndarray:
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
  assert not np.array_equal(image, image[:, ::-1])
  return image


def _plain_resize(image: np.ndarray, size: int) -> np.ndarray:
  resized = tf.image.resize(image, [size, size], method="bicubic", antialias=True)
  return as_pil_stores_it(resized.numpy())


@pytest.mark.parametrize("hflip", [False, True])
def test_full_crop_is_a_plain_resize_and_hflip_mirrors_it(hflip):
  image = _asymmetric_image()
  source = _source(np.stack([image] * 16), np.zeros(16))
  batch = next(pipeline.train_batches(source, "train", batch_size=16, image_size=12,
                                      crop_scale=(1.0, 1.0), hflip=hflip, seed=0))
  expected = _plain_resize(image, 12)
  same = [np.array_equal(out, expected) for out in batch["image"]]
  mirrored = [np.array_equal(out, expected[:, ::-1]) for out in batch["image"]]
  assert all(s or m for s, m in zip(same, mirrored))
  if hflip:
    assert any(same) and any(mirrored)                          # both coin outcomes occur
  else:
    assert all(same)


def test_random_resized_crop_windows_stay_in_bounds_and_in_range():
  sizes = np.array([[30, 50], [50, 30], [7, 9]] * 100)
  uniforms = np.random.default_rng(0).random((300, 4, 10))
  windows = crops.random_resized_crop_windows(sizes, uniforms, scale=(0.2, 0.6),
                                              ratio=(3 / 4, 4 / 3))
  assert windows.dtype == np.int32 and windows.shape == (300, 4)
  top, left, h, w = windows.T
  assert (top >= 0).all() and (left >= 0).all()
  assert (top + h <= sizes[:, 0]).all() and (left + w <= sizes[:, 1]).all()
  big = sizes[:, 0] > 7                                          # 7x9: rounding dominates
  area, aspect = (h * w / sizes.prod(1))[big], (w / h)[big]
  assert (0.18 <= area).all() and (area <= 0.63).all()           # bounds + rounding slack
  assert (0.7 <= aspect).all() and (aspect <= 1.4).all()
  assert len({tuple(x) for x in windows}) > 200                  # the draws do vary them


class _Replay:
  """A random.Random stand-in for torchvision's get_params that replays given uniforms."""

  def __init__(self, uniforms: np.ndarray):
    self.u = uniforms   # (4, attempts): area, log-aspect, top, left
    self.calls = {"uniform": 0, "randint": 0}

  def uniform(self, lo: float, hi: float) -> float:
    i = self.calls["uniform"]
    self.calls["uniform"] += 1
    return lo + (hi - lo) * self.u[i % 2, i // 2]

  def randint(self, lo: int, hi: int) -> int:
    i = self.calls["randint"]
    self.calls["randint"] += 1
    attempt = (self.calls["uniform"] - 1) // 2
    return lo + int(self.u[2 + i, attempt] * (hi - lo + 1))


def test_random_resized_crop_windows_follow_torchvision_on_the_same_draws():
  """Attempt order, rounding, bounds and the fallback are torchvision's (pil_loader's copy)."""
  from mae_jax_bench import pil_loader
  rng = np.random.default_rng(1)
  sizes = np.stack([rng.integers(1, 120, 2000), rng.integers(1, 120, 2000)], axis=1)
  uniforms = rng.random((2000, 4, 10))
  for scale in [(0.08, 1.0), (0.9, 1.0)]:   # (0.9, 1): long thin images take the fallback
    windows = crops.random_resized_crop_windows(sizes, uniforms, scale=scale,
                                                ratio=(3 / 4, 4 / 3))
    expected = [pil_loader.random_resized_crop_params(int(w), int(h), scale, (3 / 4, 4 / 3),
                                                      _Replay(u))
                for (h, w), u in zip(sizes, uniforms)]
    np.testing.assert_array_equal(windows, np.array(expected))


def test_random_resized_crop_falls_back_to_a_central_crop():
  # No window of >= 90% of a 10x100 image has aspect <= 4/3: torchvision's fallback is the
  # full height with the widest allowed aspect, centred.
  window = crops.random_resized_crop_windows(
      np.array([[10, 100]]), np.random.default_rng(0).random((1, 4, 10)), scale=(0.9, 1.0),
      ratio=(3 / 4, 4 / 3))
  assert window.tolist() == [[0, 43, 10, 13]]


def test_crop_and_flip_draws_are_per_example_stateless_draws():
  """Drawn for many positions at once, each is what its own (seed, position) gives alone."""
  positions = np.array([0, 1, 7, 40, 2**40])
  uniforms, flips = crops.crop_and_flip_draws(3, positions)
  assert uniforms.shape == (5, 4, 10) and flips.shape == (5,)
  for i, p in enumerate(positions):
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(
        tf.constant([3, p], tf.int64), 2))
    np.testing.assert_array_equal(
        uniforms[i], tf.random.stateless_uniform([4, 10], crop_seed, dtype=tf.float64))
    assert flips[i] == tf.random.stateless_uniform([], flip_seed)
  other, _ = crops.crop_and_flip_draws(4, positions)
  assert not np.allclose(other, uniforms)


# ---- evaluation --------------------------------------------------------------------------------

def test_eval_resizes_the_shorter_side_and_crops_the_centre():
  rng = np.random.default_rng(1)
  image = rng.integers(0, 256, (10, 20, 3), dtype=np.uint8)
  batch = next(pipeline.eval_batches(_source(image[None], [0]), "train", batch_size=1, image_size=8,
                                     crop_ratio=0.5))
  # Shorter side 10 -> int(8 / 0.5) = 16, so 10x20 -> 16x32; the central 8x8 starts at (4, 12).
  resized = tf.image.resize(image, [16, 32], method="bicubic", antialias=True)
  np.testing.assert_array_equal(batch["image"][0], as_pil_stores_it(resized.numpy())[4:12, 12:20])


def test_eval_counts_every_example_once_with_padding():
  source = _index_source(50)
  args = dict(image_size=4)
  whole = list(pipeline.eval_batches(source, "train", batch_size=12, **args))
  assert len(whole) == 5                                         # ceil(50 / 12)
  mask = np.concatenate([b["mask"] for b in whole])
  labels = np.concatenate([b["label"] for b in whole])
  images = np.concatenate([b["image"] for b in whole])
  np.testing.assert_array_equal(mask, np.arange(60) < 50)
  np.testing.assert_array_equal(labels[:50], np.arange(50))
  np.testing.assert_array_equal(images[:50], np.broadcast_to(
      np.arange(50, dtype=np.uint8)[:, None, None, None], images[:50].shape))
  assert not labels[50:].any() and not images[50:].any()

  shards = [list(pipeline.eval_batches(source, "train", batch_size=4, num_shards=3, shard_index=k,
                                       **args)) for k in range(3)]
  assert [len(s) for s in shards] == [5, 5, 5]                   # equal length for every shard
  for step, batch in enumerate(whole):
    for key in ("image", "label", "mask"):
      np.testing.assert_array_equal(np.concatenate([s[step][key] for s in shards]), batch[key])


# ---- every kind of source ----------------------------------------------------------------------

def _described_as_before(source) -> str:
  """How the runner described a source before sources described themselves (by probing)."""
  if hasattr(source, "test_removed"):
    return (f"{len(source.train)} training / {len(source.test)} test rows, "
            f"{len(source.columns)} columns, {int(source.test_removed.sum())} test entries removed")
  if hasattr(source, "in_channels"):    # image sources have class_names too
    return (f"{len(source.train)} training / {len(source.val)} validation volumes, "
            f"{source.num_classes} classes ({', '.join(source.class_names)}), "
            f"{source.in_channels} channel(s)")
  if hasattr(source, "borders"):
    windows = {s: source.num_windows(s) for s in source.borders}
    return f"{len(source.variables)} variables, windows {windows}"
  return f"{source.split_sizes}, {source.num_classes} classes"


def _volume_source():
  from mae_jax.data import volumes  # pylint: disable=g-import-not-at-top  (nibabel)
  image = np.zeros((8, 8, 8, 1), np.float32)
  image[2:6, 2:6, 2:6] = 1.0
  label = (image[..., 0] > 0).astype(np.uint8)
  prep = dict(spacing=(1.0, 1.0, 1.0), intensity="window", intensity_range=(0.0, 1.0))
  case = lambda name: volumes.preprocess(name, image, label, np.eye(4), **prep)  # noqa: E731
  return volumes.VolumeSource("toy3d", 2, ("background", "cube"), 1,
                              [case("a"), case("b")], [case("c")])


def test_every_kind_of_source_is_a_data_source_and_describes_itself(digits_source, tmp_path):
  rows = ["date,a,b"] + [f"2020-01-01 {h:02d}:00,{h},{h * h % 7}" for h in range(24)]
  (tmp_path / "s.csv").write_text("\n".join(rows) + "\n")
  kinds = {
      "image": digits_source,
      "segmentation": seg_sources.seg_source(seg_sources.DIGITS_SEG),
      "series": series.load_series(f"csv:{tmp_path / 's.csv'}", lookback=4, horizon=2,
                                   protocol="fractions", split=(0.5, 0.25, 0.25)),
      "table": tables.load_table("wine"),
      "volumes": _volume_source(),
  }
  for kind, source in kinds.items():
    assert isinstance(source, base.DataSource), kind
    assert isinstance(source.name, str) and source.name, kind
    assert source.splits == tuple(source.split_sizes), kind
    assert all(isinstance(n, int) and n > 0 for n in source.split_sizes.values()), kind
    assert source.describe() == _described_as_before(source), kind
  assert kinds["image"].describe() == "{'train': 1437, 'test': 360}, 10 classes"
  assert kinds["segmentation"].describe() == "{'train': 5000, 'test': 300}, 11 classes"
  assert kinds["series"].split_sizes == {"train": 7, "val": 5, "test": 5}   # windows
  assert kinds["series"].describe() == "2 variables, windows {'train': 7, 'val': 5, 'test': 5}"
  assert kinds["table"].split_sizes == {"train": 142, "test": 36}            # rows
  assert kinds["volumes"].split_sizes == {"train": 2, "val": 1}              # volumes
  assert kinds["volumes"].describe() == ("2 training / 1 validation volumes, 2 classes "
                                         "(background, cube), 1 channel(s)")
