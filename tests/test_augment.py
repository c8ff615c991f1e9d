"""What the fine-tune augmentations do: RandAugment ops against PIL (what timm runs), colour
jitter, random erasing and mixup/cutmix checked on their outputs, not only their shapes."""

import itertools

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageEnhance, ImageOps

from mae_jax.data import augment
from mae_jax.data import pipeline
from mae_jax.data import randaugment
from mae_jax.data import sources

FILL = (124, 116, 104)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
  """A real photo (scikit-learn's sample), 64x48, uint8 RGB, at reduced contrast (60..187) so
  that every op, autocontrast included, visibly changes it."""
  from sklearn.datasets import load_sample_images
  image = Image.fromarray(load_sample_images().images[0]).resize((64, 48), Image.BICUBIC)
  return np.asarray(image) // 2 + 60


def _seed(*values) -> tf.Tensor:
  return tf.constant(values, tf.int64)


def _pil(photo: np.ndarray, name: str, level: float) -> np.ndarray:
  """timm's op `name` at `level` (positive direction), with PIL."""
  im = Image.fromarray(photo)
  f = level / 10
  affine = lambda m: im.transform(im.size, Image.AFFINE, m, resample=Image.BILINEAR,  # noqa: E731
                                  fillcolor=FILL)
  out = {
      "AutoContrast": lambda: ImageOps.autocontrast(im),
      "Equalize": lambda: ImageOps.equalize(im),
      "Invert": lambda: ImageOps.invert(im),
      "Rotate": lambda: im.rotate(f * 30, resample=Image.BILINEAR, fillcolor=FILL),
      "PosterizeIncreasing": lambda: ImageOps.posterize(im, 4 - int(f * 4)),
      "SolarizeIncreasing": lambda: ImageOps.solarize(im, 256 - int(f * 256)),
      "SolarizeAdd": lambda: im.point([min(255, i + int(f * 110)) if i < 128 else i
                                       for i in range(256)] * 3),
      "ColorIncreasing": lambda: ImageEnhance.Color(im).enhance(1 + f * 0.9),
      "ContrastIncreasing": lambda: ImageEnhance.Contrast(im).enhance(1 + f * 0.9),
      "BrightnessIncreasing": lambda: ImageEnhance.Brightness(im).enhance(1 + f * 0.9),
      "SharpnessIncreasing": lambda: ImageEnhance.Sharpness(im).enhance(1 + f * 0.9),
      "ShearX": lambda: affine((1, f * 0.3, 0, 0, 1, 0)),
      "ShearY": lambda: affine((1, 0, 0, f * 0.3, 1, 0)),
      "TranslateXRel": lambda: affine((1, 0, f * 0.45 * im.size[0], 0, 1, 0)),
      "TranslateYRel": lambda: affine((1, 0, 0, 0, 1, f * 0.45 * im.size[1])),
  }[name]()
  return np.asarray(out, np.int32)


@pytest.mark.parametrize("name", randaugment.OPS)
def test_rand_augment_ops_match_pil(photo, name):
  level = 7.0
  ours = randaugment.apply_op(tf.constant(photo), randaugment.OPS.index(name), level).numpy()
  ref = _pil(photo, name, level)
  diff = np.abs(ours.astype(np.int32) - ref)
  assert np.abs(ref - photo).mean() > 1                            # the op changes the photo
  if name in ("Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"):
    # Bilinear sampling conventions differ by a fraction of a pixel at most.
    assert diff.mean() < 4 and np.mean(diff <= 8) > 0.9, (diff.mean(), np.mean(diff <= 8))
  else:
    assert diff.max() <= 2, diff.max()


def test_rand_augment_is_deterministic_per_seed_and_changes_images(photo):
  image = tf.constant(photo, tf.float32)
  run = lambda s: randaugment.rand_augment(image, _seed(0, s), num_layers=2,  # noqa: E731
                                           magnitude=9.0, magnitude_std=0.5).numpy()
  outs = [run(s) for s in range(40)]
  np.testing.assert_array_equal(outs[3], run(3))
  changed = [not np.array_equal(o, photo) for o in outs]
  # Each of the 2 layers is skipped with probability 0.5: ~1/4 of the images stay unchanged.
  assert 0.5 < np.mean(changed) < 0.95
  assert len({o.tobytes() for o in outs}) > 20                      # many different results
  assert all(o.dtype == np.float32 and o.min() >= 0 and o.max() <= 255 for o in outs)


def test_color_jitter_factors_stay_in_range(photo):
  image = tf.constant(photo, tf.float32)
  np.testing.assert_array_equal(augment.color_jitter(image, _seed(0, 1), 0.0), photo)
  for s in range(10):
    out = augment.color_jitter(image, _seed(0, s), 0.4).numpy()
    np.testing.assert_array_equal(out, augment.color_jitter(image, _seed(0, s), 0.4))
    assert not np.array_equal(out, photo)
    # Brightness, contrast and saturation factors in [0.6, 1.4]: the mean level moves < 45%.
    assert 0.5 < out.mean() / photo.mean() < 1.5


def _erased_box(out: np.ndarray, image: np.ndarray) -> tuple[int, int, int, int] | None:
  changed = np.any(out != image, axis=-1)
  if not changed.any():
    return None
  rows, cols = np.where(changed.any(axis=1))[0], np.where(changed.any(axis=0))[0]
  top, left = rows[0], cols[0]
  h, w = rows[-1] - top + 1, cols[-1] - left + 1
  return top, left, h, w


_erase = tf.function(augment.random_erase)   # traced once per probability, not run eagerly


def test_random_erasing_fills_one_rectangle_with_unit_normal_noise():
  image = np.full((40, 60, 3), 100.0, np.float32)
  boxes = []
  for s in range(60):
    out = _erase(tf.constant(image), _seed(5, s), 1.0, MEAN, STD).numpy()
    box = _erased_box(out, image)
    assert box is not None
    top, left, h, w = box
    inside = out[top:top + h, left:left + w]
    assert np.all(inside != 100.0)                                  # the whole box, nothing else
    assert 0.02 <= h * w / (40 * 60) <= 0.34 and 0.25 <= w / h <= 3.5
    boxes.append(box)
    normalised = (inside / 255 - np.asarray(MEAN)) / np.asarray(STD)
    if h * w > 200:
      assert abs(normalised.mean()) < 0.25 and 0.75 < normalised.std() < 1.25
  assert len(set(boxes)) > 50
  np.testing.assert_array_equal(
      _erase(tf.constant(image), _seed(5, 3), 1.0, MEAN, STD),
      _erase(tf.constant(image), _seed(5, 3), 1.0, MEAN, STD))
  erased = [_erased_box(_erase(tf.constant(image), _seed(6, s), 0.25, MEAN,
                                             STD).numpy(), image) is not None
            for s in range(200)]
  assert 0.15 < np.mean(erased) < 0.35                             # probability 0.25


def _distinct_batch(n: int = 6, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
  """Image i is constant i+1 in every pixel: any mix can be read back from the pixels."""
  images = np.broadcast_to(np.arange(1, n + 1, dtype=np.float32)[:, None, None, None],
                           (n, size, size, 3)).copy()
  return images, np.arange(n, dtype=np.int32)


def test_mixup_mixes_images_and_labels_with_the_same_lambda():
  images, labels = _distinct_batch()
  options = augment.Augment(mixup_alpha=0.8)
  lams = []
  for s in range(20):
    mixed, soft = (t.numpy() for t in augment.mix_batch(
        tf.constant(images), tf.constant(labels), _seed(1, s), 10, options))
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-6)
    lam = soft[0, 0]
    lams.append(lam)
    for i in range(6):
      partner = 5 - i
      np.testing.assert_allclose(soft[i, i], lam, atol=1e-6)
      np.testing.assert_allclose(soft[i, partner], 1 - lam, atol=1e-6)
      np.testing.assert_allclose(mixed[i], lam * (i + 1) + (1 - lam) * (partner + 1), rtol=1e-5)
  assert len(set(lams)) == 20 and 0.2 < np.mean(lams) < 0.8          # Beta(0.8, 0.8): mean 0.5


def test_cutmix_box_area_matches_the_label_weight():
  images, labels = _distinct_batch()
  options = augment.Augment(cutmix_alpha=1.0)
  for s in range(20):
    mixed, soft = (t.numpy() for t in augment.mix_batch(
        tf.constant(images), tf.constant(labels), _seed(2, s), 6, options))
    for i in range(6):
      from_partner = np.mean(mixed[i, ..., 0] == 6 - i)
      np.testing.assert_allclose(soft[i, i], 1 - from_partner, atol=1e-6)
      np.testing.assert_allclose(soft[i, 5 - i], from_partner, atol=1e-6)
      box = _erased_box(mixed[i], images[i])
      if box is not None:                                          # pasted region: a rectangle
        top, left, h, w = box
        assert np.all(mixed[i, top:top + h, left:left + w] == 6 - i)


def test_mixup_cutmix_switch_and_mix_probability():
  images, labels = _distinct_batch()
  both = augment.Augment(mixup_alpha=0.8, cutmix_alpha=1.0)
  kinds = []
  for s in range(60):
    mixed = augment.mix_batch(tf.constant(images), tf.constant(labels), _seed(3, s), 6,
                              both)[0].numpy()
    # Cutmix leaves whole pixels of one image or the other; mixup blends every pixel.
    kinds.append(bool(np.all(np.isin(mixed[0], (1.0, 6.0)))))
  assert 0.3 < np.mean(kinds) < 0.7                                # switch probability 0.5
  never = augment.Augment(mixup_alpha=0.8, cutmix_alpha=1.0, mixup_prob=0.0)
  mixed, soft = augment.mix_batch(tf.constant(images), tf.constant(labels), _seed(3, 0), 6, never)
  np.testing.assert_array_equal(mixed, images)
  np.testing.assert_array_equal(soft, np.eye(6, dtype=np.float32))


def test_finetune_options_through_train_batches_are_deterministic_and_soft():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (32, 20, 24, 3), dtype=np.uint8)
  labels = np.arange(32, dtype=np.int32) % 5
  source = sources.Source(
      name="toy", num_classes=5, split_sizes={"train": 32}, train_split="train",
      eval_split="train",
      loader=lambda split: tf.data.Dataset.from_tensor_slices({"image": images, "label": labels}))
  options = augment.Augment(rand_augment_layers=2, random_erase_prob=0.25, mixup_alpha=0.8,
                            cutmix_alpha=1.0)
  take = lambda it, n: list(itertools.islice(it, n))  # noqa: E731
  stream = lambda **kw: pipeline.train_batches(  # noqa: E731
      source, "train", batch_size=8, image_size=16, crop_scale=(0.08, 1.0), hflip=True,
      mean=MEAN, std=STD, seed=3, options=options, **kw)
  fresh = take(stream(), 6)
  resumed = take(stream(start_step=4), 2)
  for a, b in zip(fresh[4:], resumed):
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["label"], b["label"])
  for batch in fresh:
    assert batch["label"].shape == (8, 5) and batch["label"].dtype == np.float32
    np.testing.assert_allclose(batch["label"].sum(axis=1), 1.0, rtol=1e-5)
  assert any(len(np.unique(b["label"])) > 2 for b in fresh)         # labels were mixed
