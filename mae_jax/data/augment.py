"""Fine-tune augmentations beyond crop and flip: colour jitter, random erasing, mixup/cutmix.

Their semantics follow what the official MAE fine-tune gets from timm 0.3.2 (ColorJitter,
RandomErasing in "pixel" mode, Mixup in "batch" mode); RandAugment lives in randaugment.py.
Every draw is a stateless TF random op keyed on the seed it is given, so a stream of batches is
a pure function of (seed, position).
"""

import dataclasses
import math

import ml_collections

from mae_jax.data import randaugment
from mae_jax.data.tfsetup import tf

_ERASE_AREA = (0.02, 1 / 3)     # timm RandomErasing: erased fraction of the image
_ERASE_ASPECT = (0.3, 1 / 0.3)  # and aspect ratio range (drawn log-uniformly)
_ERASE_ATTEMPTS = 10


@dataclasses.dataclass(frozen=True)
class Augment:
  """Per-stage augmentation options (config.<stage> fields of the same names); all off by default.

  rand_augment_layers: RandAugment ops per image, 0 = off (official fine-tune: 2, magnitude 9,
    magnitude std 0.5).
  color_jitter: brightness/contrast/saturation strength; as in timm, used only when RandAugment
    is off (the official fine-tune passes 0.4, which timm therefore ignores).
  random_erase_prob: probability of erasing one rectangle with N(0, 1) noise (official: 0.25).
  mixup_alpha / cutmix_alpha: Beta(alpha, alpha) mixing strength, 0 = off (official: 0.8 / 1.0);
    with both on, a batch uses cutmix with probability mixup_switch_prob, and is mixed at all
    with probability mixup_prob.
  """
  rand_augment_layers: int = 0
  rand_augment_magnitude: float = 9.0
  rand_augment_magnitude_std: float = 0.5
  color_jitter: float = 0.0
  random_erase_prob: float = 0.0
  mixup_alpha: float = 0.0
  cutmix_alpha: float = 0.0
  mixup_prob: float = 1.0
  mixup_switch_prob: float = 0.5

  @classmethod
  def from_config(cls, stage: ml_collections.ConfigDict) -> "Augment":
    """The options of a config.<stage> (pretrain, linprobe, finetune)."""
    return cls(**{f.name: stage[f.name] for f in dataclasses.fields(cls)})

  @property
  def mixes(self) -> bool:
    """Whether batches are mixed (labels then become soft: (batch, num_classes) floats)."""
    return self.mixup_prob > 0 and (self.mixup_alpha > 0 or self.cutmix_alpha > 0)


def color_jitter(image: tf.Tensor, seed: tf.Tensor, strength: float) -> tf.Tensor:
  """torchvision's ColorJitter(strength, strength, strength) on float32 (H, W, 3) in [0, 255].

  Brightness, contrast and saturation factors ~ U[1 - strength, 1 + strength], applied in a
  random order, on uint8 pixels as torchvision does on PIL images.
  """
  ops = (randaugment.brightness, randaugment.contrast, randaugment.saturation)
  u = tf.random.stateless_uniform([2, len(ops)], seed)
  factors = 1.0 + strength * (2.0 * u[0] - 1.0)
  order = tf.argsort(u[1])
  out = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
  for i in range(len(ops)):
    current = out
    out = tf.switch_case(order[i], [lambda op=op, k=k: op(current, factors[k])
                                    for k, op in enumerate(ops)])
  return tf.cast(out, tf.float32)


def random_erase(image: tf.Tensor, seed: tf.Tensor, prob: float, mean, std) -> tf.Tensor:
  """timm's RandomErasing(prob, mode="pixel") on float32 (H, W, 3) in [0, 255], pre-normalising.

  With probability `prob`, a rectangle (area 2%-33%, aspect 0.3-3.3; first of 10 draws that
  fits) is filled with noise that normalises ((x / 255 - mean) / std) to N(0, 1) per pixel:
  what timm writes after normalisation.
  """
  height, width = image.shape[0], image.shape[1]
  u = tf.random.stateless_uniform([5, _ERASE_ATTEMPTS], seed, dtype=tf.float64)
  area = height * width * (_ERASE_AREA[0] + (_ERASE_AREA[1] - _ERASE_AREA[0]) * u[0])
  log_lo, log_hi = math.log(_ERASE_ASPECT[0]), math.log(_ERASE_ASPECT[1])
  aspect = tf.exp(log_lo + (log_hi - log_lo) * u[1])
  h = tf.cast(tf.round(tf.sqrt(area * aspect)), tf.int32)
  w = tf.cast(tf.round(tf.sqrt(area / aspect)), tf.int32)
  fits = (h < height) & (w < width)
  first = tf.reduce_min(tf.where(fits, tf.range(_ERASE_ATTEMPTS), _ERASE_ATTEMPTS))
  erase = (u[4][0] < prob) & (first < _ERASE_ATTEMPTS)

  def erased():
    k = tf.minimum(first, _ERASE_ATTEMPTS - 1)
    top = tf.cast(tf.floor(u[2][k] * tf.cast(height - h[k] + 1, tf.float64)), tf.int32)
    left = tf.cast(tf.floor(u[3][k] * tf.cast(width - w[k] + 1, tf.float64)), tf.int32)
    rows = tf.range(height)[:, None, None]
    cols = tf.range(width)[None, :, None]
    inside = (rows >= top) & (rows < top + h[k]) & (cols >= left) & (cols < left + w[k])
    noise = tf.random.stateless_normal(
        image.shape, tf.random.experimental.stateless_fold_in(seed, 1))
    noise = (noise * tf.constant(std, tf.float32) + tf.constant(mean, tf.float32)) * 255.0
    return tf.where(inside, noise, image)

  return tf.cond(erase, erased, lambda: image)


def _beta(seed: tf.Tensor, alpha: float) -> tf.Tensor:
  """One Beta(alpha, alpha) draw, as the ratio of two Gamma draws."""
  seeds = tf.random.experimental.stateless_split(seed, 2)
  x = tf.random.stateless_gamma([], seeds[0], alpha)
  y = tf.random.stateless_gamma([], seeds[1], alpha)
  return x / (x + y)


def cutmix_box(lam: tf.Tensor, height: int, width: int, u_y: tf.Tensor, u_x: tf.Tensor,
               ) -> tuple[tf.Tensor, ...]:
  """timm's rand_bbox: a box of side fraction sqrt(1 - lam) centred at a uniform pixel, clipped.

  Returns int32 (top, bottom, left, right), bottom/right exclusive.
  """
  ratio = tf.sqrt(1.0 - lam)
  cut_h = tf.cast(height * ratio, tf.int32)
  cut_w = tf.cast(width * ratio, tf.int32)
  cy = tf.minimum(tf.cast(u_y * height, tf.int32), height - 1)
  cx = tf.minimum(tf.cast(u_x * width, tf.int32), width - 1)
  return (tf.clip_by_value(cy - cut_h // 2, 0, height),
          tf.clip_by_value(cy + cut_h // 2, 0, height),
          tf.clip_by_value(cx - cut_w // 2, 0, width),
          tf.clip_by_value(cx + cut_w // 2, 0, width))


def mix_batch(images: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor, num_classes: int,
              options: Augment) -> tuple[tf.Tensor, tf.Tensor]:
  """timm's Mixup(mode="batch"): one lambda for the batch, each example mixed with its mirror.

  images: float32 (B, H, W, 3); labels: int32 (B,) -> (mixed images, float32 (B, num_classes)
  soft labels lam * onehot(y) + (1 - lam) * onehot(y reversed)). Example i is mixed with example
  B-1-i of the same batch. Cutmix pastes the partner's box and sets lam to the unpasted area
  fraction. Label smoothing is left to the loss (smoothing commutes with mixing).
  """
  _, height, width, _ = images.shape
  u = tf.random.stateless_uniform([4], seed)
  lam_seed = tf.random.experimental.stateless_fold_in(seed, 1)
  if options.mixup_alpha > 0 and options.cutmix_alpha > 0:
    use_cutmix = u[1] < options.mixup_switch_prob
  else:
    use_cutmix = tf.constant(options.cutmix_alpha > 0)
  lam = tf.cond(use_cutmix, lambda: _beta(lam_seed, max(options.cutmix_alpha, 1e-6)),
                lambda: _beta(lam_seed, max(options.mixup_alpha, 1e-6)))
  lam = tf.where(u[0] < options.mixup_prob, lam, 1.0)
  partner = tf.reverse(images, axis=[0])

  def cutmix():
    top, bottom, left, right = cutmix_box(lam, height, width, u[2], u[3])
    rows = tf.range(height)[None, :, None, None]
    cols = tf.range(width)[None, None, :, None]
    inside = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
    area = tf.cast((bottom - top) * (right - left), tf.float32)
    return tf.where(inside, partner, images), 1.0 - area / (height * width)

  def mixup():
    return lam * images + (1.0 - lam) * partner, lam

  mixed, lam = tf.cond(use_cutmix, cutmix, mixup)
  onehot = tf.one_hot(labels, num_classes, dtype=tf.float32)
  soft = lam * onehot + (1.0 - lam) * tf.reverse(onehot, axis=[0])
  return mixed, soft
