"""Losses: MAE reconstruction, classification, segmentation (2-D cross-entropy, 3-D Dice + CE)."""

import jax
import jax.numpy as jnp
import optax

from mae_jax.spatial import resize_bilinear


def mae_loss(target_patches: jax.Array, pred: jax.Array, mask: jax.Array,
             norm_pix_loss: bool, eps: float = 1e-6) -> jax.Array:
  """Mean squared error per patch, averaged over removed patches only.

  target_patches, pred: (N, L, P); mask: (N, L), 1 = removed. With
  `norm_pix_loss` each target patch is normalised by its own mean and
  (unbiased, as torch's `Tensor.var`) variance. Returns a float32 scalar.
  """
  target = target_patches.astype(jnp.float32)
  pred = pred.astype(jnp.float32)
  if norm_pix_loss:
    mean = target.mean(axis=-1, keepdims=True)
    var = target.var(axis=-1, keepdims=True, ddof=1)
    target = (target - mean) / jnp.sqrt(var + eps)
  per_patch = jnp.mean((pred - target) ** 2, axis=-1)
  mask = mask.astype(jnp.float32)
  return jnp.sum(per_patch * mask) / jnp.sum(mask)


def classification_loss(logits: jax.Array, labels: jax.Array, label_smoothing: float
                        ) -> jax.Array:
  """Softmax cross-entropy, mean over the batch.

  logits: (N, K); labels: (N,) int class ids, or (N, K) soft targets (mixup).
  """
  logits = logits.astype(jnp.float32)
  if labels.ndim == 1:
    labels = jax.nn.one_hot(labels, logits.shape[-1])
  if label_smoothing:
    labels = optax.smooth_labels(labels, label_smoothing)
  return optax.softmax_cross_entropy(logits, labels).mean()


def topk_correct(logits: jax.Array, labels: jax.Array, k: int) -> jax.Array:
  """logits: (N, K), labels: (N,) -> (N,) float, 1 where the label is among the top k."""
  k = min(k, logits.shape[-1])
  _, top = jax.lax.top_k(logits, k)
  return jnp.any(top == labels[:, None], axis=-1).astype(jnp.float32)


IGNORE_LABEL = 255   # label maps: pixels that no loss or metric counts (mmsegmentation's)


def segmentation_loss(logits: jax.Array, labels: jax.Array, ignore_label: int = IGNORE_LABEL
                      ) -> jax.Array:
  """Per-pixel softmax cross-entropy, pixels labelled `ignore_label` contributing zero.

  logits: (N, h, w, K), resized (bilinear, as torch's align_corners=False) to the labels'
  (N, H, W) int grid first. The mean is over all N * H * W pixels, ignored ones included, as
  mmsegmentation's CrossEntropyLoss (avg_non_ignore=False) takes it.
  """
  logits = resize_bilinear(logits.astype(jnp.float32), labels.shape[1:3])
  valid = labels != ignore_label
  xent = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.where(valid, labels, 0))
  return jnp.mean(jnp.where(valid, xent, 0.0))


def dice_ce_loss(logits: jax.Array, labels: jax.Array, num_classes: int, smooth: float = 1e-5,
                 dice_weight: float = 1.0, ce_weight: float = 1.0) -> jax.Array:
  """MONAI's DiceCELoss(to_onehot_y=True, softmax=True), its defaults otherwise: soft Dice of
  the softmax against the one-hot labels, background included, per sample and class over
  space (1 - (2 sum(p g) + smooth) / (sum(p) + sum(g) + smooth)), averaged over both; plus the
  cross-entropy averaged over voxels. A class absent from a sample and never predicted there
  scores a Dice loss of ~0 thanks to `smooth` (MONAI's smooth_nr = smooth_dr).

  logits: (N, *S, K) float; labels: (N, *S) int in [0, num_classes) -> float32 scalar.
  """
  logits = logits.astype(jnp.float32)
  probs = jax.nn.softmax(logits, axis=-1)
  onehot = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
  space = tuple(range(1, logits.ndim - 1))
  overlap = jnp.sum(probs * onehot, axis=space)                      # (N, K)
  total = jnp.sum(probs, axis=space) + jnp.sum(onehot, axis=space)   # (N, K)
  dice = 1.0 - (2.0 * overlap + smooth) / (total + smooth)
  xent = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  return dice_weight * dice.mean() + ce_weight * xent
