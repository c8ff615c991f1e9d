"""Patchify, random masking and the MAE loss: properties of the math."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mae_jax import losses, masking


def test_patchify_roundtrip_and_order():
  x = jax.random.normal(jax.random.key(0), (2, 8, 12, 3))
  p = masking.patchify(x, 4)
  assert p.shape == (2, 6, 48)
  # Patch (row 1, col 2) is the image block rows 4:8, cols 8:12, flattened (row, col, channel).
  np.testing.assert_array_equal(p[:, 1 * 3 + 2], x[:, 4:8, 8:12].reshape(2, -1))
  np.testing.assert_array_equal(masking.unpatchify(p, 4, grid=(2, 3)), x)


def test_patchify_rejects_indivisible_size():
  with pytest.raises(ValueError, match="not divisible"):
    masking.patchify(jnp.zeros((1, 10, 10, 3)), 4)


@pytest.mark.parametrize("ratio,length", [(0.75, 64), (0.5, 49), (0.9, 196), (0.3, 10)])
def test_random_masking(ratio, length):
  n, d = 3, 5
  x = jnp.arange(n * length * d, dtype=jnp.float32).reshape(n, length, d)
  noise = jax.random.uniform(jax.random.key(1), (n, length))
  kept, mask, ids_restore = masking.random_masking(x, ratio, noise)
  k = int(length * (1 - ratio))
  assert kept.shape == (n, k, d) and masking.num_kept(length, ratio) == k
  # Kept exactly k, the ones with the smallest noise, in increasing-noise order.
  np.testing.assert_array_equal(mask.sum(1), length - k)
  order = np.argsort(np.asarray(noise), axis=1)
  np.testing.assert_array_equal(kept[:, :, 0] // d % length, order[:, :k])
  # ids_restore is a permutation that inverts the shuffle.
  for row in np.asarray(ids_restore):
    assert sorted(row) == list(range(length))
  shuffled = jnp.take_along_axis(x, jnp.asarray(order)[:, :, None], axis=1)
  np.testing.assert_array_equal(masking.unshuffle(shuffled, ids_restore), x)
  # The mask is 0 exactly at the kept positions.
  kept_pos = np.zeros((n, length))
  np.put_along_axis(kept_pos, order[:, :k], 1, axis=1)
  np.testing.assert_array_equal(mask, 1 - kept_pos)


def test_loss_ignores_visible_patches():
  rng = np.random.default_rng(0)
  target, pred = rng.normal(size=(2, 16, 12)), rng.normal(size=(2, 16, 12))
  mask = (rng.random((2, 16)) < 0.75).astype(np.float32)
  for norm_pix in (False, True):
    base = losses.mae_loss(target, pred, mask, norm_pix)
    changed = np.where(mask[..., None] > 0, pred, pred + 100.0)   # only visible patches move
    np.testing.assert_allclose(losses.mae_loss(target, changed, mask, norm_pix), base, rtol=1e-6)
    assert abs(losses.mae_loss(target, pred + mask[..., None], mask, norm_pix) - base) > 0.1


def test_loss_value_and_norm_pix():
  rng = np.random.default_rng(1)
  target = rng.normal(3.0, 2.0, size=(2, 8, 12)).astype(np.float32)
  pred = rng.normal(size=(2, 8, 12)).astype(np.float32)
  mask = np.zeros((2, 8), np.float32)
  mask[:, :5] = 1
  expected = ((pred - target) ** 2).mean(-1)[:, :5].mean()
  np.testing.assert_allclose(losses.mae_loss(target, pred, mask, False), expected, rtol=1e-5)
  # norm_pix: each target patch standardised with its own mean and unbiased variance.
  t = (target - target.mean(-1, keepdims=True)) / np.sqrt(target.var(-1, ddof=1, keepdims=True)
                                                           + 1e-6)
  expected = ((pred - t) ** 2).mean(-1)[:, :5].mean()
  np.testing.assert_allclose(losses.mae_loss(target, pred, mask, True), expected, rtol=1e-5)
  # Predicting the normalised target exactly gives zero loss.
  assert float(losses.mae_loss(target, t, mask, True)) < 1e-10


def test_classification_loss_and_topk():
  logits = jnp.array([[2.0, 1.0, 0.0], [0.0, 0.0, 5.0]])
  labels = jnp.array([1, 2])
  np.testing.assert_array_equal(losses.topk_correct(logits, labels, 1), [0, 1])
  np.testing.assert_array_equal(losses.topk_correct(logits, labels, 2), [1, 1])
  plain = losses.classification_loss(logits, labels, 0.0)
  expected = -np.mean([jax.nn.log_softmax(logits[0])[1], jax.nn.log_softmax(logits[1])[2]])
  np.testing.assert_allclose(plain, expected, rtol=1e-6)
  smooth = losses.classification_loss(logits, labels, 0.1)
  soft = np.full((2, 3), 0.1 / 3) + 0.9 * np.eye(3)[[1, 2]]
  np.testing.assert_allclose(smooth, -np.mean((soft * jax.nn.log_softmax(logits)).sum(-1)),
                             rtol=1e-6)
