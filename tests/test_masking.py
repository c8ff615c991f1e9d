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


def test_patchify_of_series_and_volumes():
  # A series (N, T, C): patch k is steps k*p .. k*p + p - 1, (step, channel) order.
  series = jax.random.normal(jax.random.key(1), (3, 12, 2))
  p = masking.patchify(series, 4)
  assert p.shape == (3, 3, 8)
  np.testing.assert_array_equal(p[:, 1], series[:, 4:8].reshape(3, -1))
  np.testing.assert_array_equal(masking.unpatchify(p, 4, grid=(3,), channels=2), series)
  # A volume (N, D, H, W, C): patch (d, h, w) in row-major grid order, (z, y, x, c) inside.
  volume = jax.random.normal(jax.random.key(2), (2, 4, 6, 8, 1))
  p = masking.patchify(volume, 2)
  assert p.shape == (2, 2 * 3 * 4, 8)
  np.testing.assert_array_equal(p[:, (1 * 3 + 2) * 4 + 3], volume[:, 2:4, 4:6, 6:8].reshape(2, -1))
  np.testing.assert_array_equal(masking.unpatchify(p, 2, grid=(2, 3, 4), channels=1), volume)
  # Per-axis patch sizes.
  assert masking.patchify(volume, (4, 3, 2)).shape == (2, 1 * 2 * 4, 24)
  assert masking.sampling_error("block", (16,), 0.75).startswith("block sampling is for 2-D")
  assert masking.mask_noise("random", jax.random.key(0), 2, (3, 4, 5), 0.75).shape == (2, 60)


def test_overlapping_series_patches_end_on_the_last_step():
  # PatchTST's stride: (T - p) // s + 1 patches, the last one ending on the last step.
  x = jnp.arange(11.0).reshape(1, 11, 1)
  p = masking.patchify(x, 4, stride=3)
  np.testing.assert_array_equal(p[0], [[1, 2, 3, 4], [4, 5, 6, 7], [7, 8, 9, 10]])
  assert masking.patch_grid((11,), 4, 3) == (3,)
  assert masking.patchify(x[:, :8], 4, stride=4).shape == (1, 2, 4)   # stride = p: tiling
  with pytest.raises(ValueError, match="for series"):
    masking.patch_grid((8, 8), 4, 2)


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


def _removed(kind, batch, grid, ratio, seed=0):
  noise = masking.mask_noise(kind, jax.random.key(seed), batch, grid, ratio)
  _, mask, _ = masking.masking_ids(noise, ratio)
  return np.asarray(mask).reshape(batch, *grid)


def test_random_sampling_is_the_official_uniform_noise():
  key = jax.random.key(7)
  np.testing.assert_array_equal(masking.mask_noise("random", key, 3, (4, 6), 0.75),
                                jax.random.uniform(key, (3, 24)))


def test_grid_sampling_keeps_the_top_left_patch_of_every_2x2_cell():
  removed = _removed("grid", 5, (6, 8), 0.75)
  kept = np.ones((6, 8), bool)
  kept[::2, ::2] = False
  assert (removed == kept[None]).all()   # the same corner for every example
  noise = masking.mask_noise("grid", jax.random.key(0), 5, (6, 8), 0.75)
  ids_keep, _, _ = masking.masking_ids(noise, 0.75)
  assert sorted(np.asarray(ids_keep[0]).tolist()) == [r * 8 + c for r in range(0, 6, 2)
                                                      for c in range(0, 8, 2)]
  assert not (np.asarray(ids_keep) == np.asarray(ids_keep[:1])).all()   # in shuffled order


def _same_state_neighbours(removed):
  """Of the removed patches' 4-neighbours inside the grid, the fraction removed too."""
  pairs = same = 0
  for shift, axis in ((1, 1), (-1, 1), (1, 2), (-1, 2)):
    rolled = np.roll(removed, shift, axis=axis)
    inside = np.ones_like(removed)
    edge = [slice(None)] * 3
    edge[axis] = 0 if shift == 1 else -1
    inside[tuple(edge)] = False
    pairs += (removed & inside).sum()
    same += (removed & rolled & inside).sum()
  return same / pairs


@pytest.mark.parametrize("ratio", [0.5, 0.75])
def test_block_sampling_removes_rectangles_of_the_exact_count(ratio):
  grid = (14, 14)
  removed = _removed("block", 64, grid, ratio)
  target = 196 - masking.num_kept(196, ratio)
  assert (removed.reshape(64, -1).sum(1) == target).all()
  # Rectangles: a removed patch's neighbours are mostly removed too, far more than at random.
  random = _removed("random", 64, grid, ratio)
  assert _same_state_neighbours(removed) > _same_state_neighbours(random) + 0.15
  # Different examples, different blocks.
  assert len({r.tobytes() for r in removed}) == 64


def test_samplings_that_cannot_be_made_are_refused():
  assert masking.sampling_error("grid", (14, 14), 0.5).startswith("grid sampling keeps one")
  assert "even patch grid" in masking.sampling_error("grid", (7, 7), 0.75)
  assert "unknown mask sampling 'blocks'" in masking.sampling_error("blocks", (4, 4), 0.75)
  assert masking.sampling_error("block", (7, 7), 0.6) is None
  with pytest.raises(ValueError, match="grid sampling"):
    masking.mask_noise("grid", jax.random.key(0), 1, (4, 4), 0.6)


@pytest.mark.parametrize("kind", ["block", "grid"])
def test_pretraining_loss_with_each_sampling(kind):
  from mae_jax import experiment  # pylint: disable=g-import-not-at-top
  from mae_jax.tasks import images as tasks  # pylint: disable=g-import-not-at-top
  from tests.helpers import load_config  # pylint: disable=g-import-not-at-top
  config = load_config("digits.py", "smoke")
  config.model.mask_sampling = kind
  experiment.validate(config)
  task = tasks.pretrain_task(config)
  images = jnp.zeros((4, 32, 32, 3), jnp.uint8)
  variables = task.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  batch = {"image": jnp.transpose(images, (0, 2, 3, 1))}   # the WCH batch layout
  loss, _ = jax.jit(task.loss_fn)(variables["params"], {}, batch, jax.random.key(1),
                                  jnp.arange(4))
  assert np.isfinite(float(loss))
  config.model.mask_ratio = 0.6
  if kind == "grid":
    with pytest.raises(ValueError, match="config.model.mask_sampling: grid sampling keeps"):
      experiment.validate(config)
