"""Reconstruction grids: the un-normalisation maths, the panels, the grid layout, the stage."""

import json
import os
import subprocess

import jax.numpy as jnp
import numpy as np
import pytest

from mae_jax import experiment, visualize
from mae_jax.tasks import images as tasks
from mae_jax.masking import patchify
from tests.helpers import load_config
from tests.test_main import script


def test_unnormalize_uses_visible_patch_statistics():
  rng = np.random.default_rng(0)
  patches = rng.normal(size=(2, 6, 12)).astype(np.float32) * 3 + 1
  mask = np.array([[0, 0, 1, 1, 1, 0], [1, 0, 1, 1, 1, 1]], np.float32)
  pred = rng.normal(size=patches.shape).astype(np.float32)
  out = np.asarray(visualize.unnormalize_pred(pred, patches, mask, True))
  for n in range(2):
    vis = patches[n][mask[n] == 0]
    m = vis.mean(axis=1).mean()                 # mean over visible patches of patch means
    v = vis.var(axis=1, ddof=1).mean()          # ... and of their unbiased variances
    np.testing.assert_allclose(out[n], pred[n] * np.sqrt(v + 1e-6) + m, rtol=1e-5, atol=1e-5)
  # The masked patches' own statistics never enter: changing them changes nothing.
  changed = patches.copy()
  changed[mask == 1] *= 7
  np.testing.assert_allclose(visualize.unnormalize_pred(pred, changed, mask, True), out, rtol=1e-6)
  # Without norm_pix_loss the prediction already is in image space.
  np.testing.assert_array_equal(visualize.unnormalize_pred(pred, patches, mask, False), pred)


def test_unnormalize_inverts_norm_pix_when_patches_share_statistics():
  # Every patch a shuffle of the same values: same mean and variance, so a perfect norm_pix
  # prediction maps back to the exact pixels, masked patches included.
  rng = np.random.default_rng(1)
  base = rng.uniform(size=12).astype(np.float32)
  patches = np.stack([rng.permutation(base) for _ in range(8)])[None]
  mean, std = base.mean(), np.sqrt(base.var(ddof=1) + 1e-6)
  mask = np.array([[1, 0, 1, 1, 0, 1, 1, 1]], np.float32)
  out = visualize.unnormalize_pred((patches - mean) / std, patches, mask, True)
  np.testing.assert_allclose(out, patches, atol=1e-5)


def test_panels_mask_paste_and_pixels():
  rng = np.random.default_rng(2)
  p, mean, std = 2, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
  images = rng.normal(size=(1, 4, 4, 3)).astype(np.float32) * 0.5
  mask = np.array([[1, 0, 0, 1]], np.float32)            # patches: top-left and bottom-right out
  pred = rng.normal(size=(1, 4, p * p * 3)).astype(np.float32)
  panels = np.asarray(visualize.reconstruction_panels(jnp.asarray(images), pred, mask, p, False,
                                                      mean, std, fill=0.5))
  assert panels.shape == (1, 4, 4, 4, 3)
  to_pixels = lambda x: np.clip(x * np.asarray(std) + np.asarray(mean), 0, 1)  # noqa: E731
  original, masked, recon, pasted = panels[0]
  np.testing.assert_allclose(original, to_pixels(images[0]), atol=1e-6)
  removed = np.zeros((4, 4), bool)
  removed[:2, :2] = removed[2:, 2:] = True
  np.testing.assert_array_equal(masked[removed], 0.5)
  np.testing.assert_allclose(masked[~removed], original[~removed], atol=1e-6)
  pred_img = to_pixels(np.asarray(visualize.unpatchify(jnp.asarray(pred), p)))[0]
  np.testing.assert_allclose(recon, pred_img, atol=1e-6)
  np.testing.assert_allclose(pasted[removed], pred_img[removed], atol=1e-6)
  np.testing.assert_allclose(pasted[~removed], original[~removed], atol=1e-6)
  # patchify order is what the panels use: the prediction of patch 3 lands bottom-right.
  np.testing.assert_allclose(patchify(jnp.asarray(pred_img[None]), p)[0, 3],
                             to_pixels(pred[0, 3].reshape(p, p, 3)).reshape(-1), atol=1e-6)


def test_grid_layout():
  n, k, h, w, pad, scale = 3, 4, 2, 3, 1, 2
  panels = np.zeros((n, k, h, w, 3), np.float32)
  for i in range(n):
    for j in range(k):
      panels[i, j] = (i * k + j) / (n * k)
  grid = visualize.panel_grid(panels, pad=pad, scale=scale)
  hh, ww = h * scale, w * scale
  assert grid.shape == (n * (hh + pad) + pad, k * (ww + pad) + pad, 3)
  assert grid.dtype == np.uint8
  for i in range(n):
    for j in range(k):
      top, left = pad + i * (hh + pad), pad + j * (ww + pad)
      cell = grid[top:top + hh, left:left + ww]
      assert (cell == round(255 * (i * k + j) / (n * k))).all(), (i, j)
      assert (grid[top - 1, left:left + ww] == 255).all()      # gutter above each cell
      assert (grid[top:top + hh, left - 1] == 255).all()       # and left of it
  assert visualize.upscale_for(32, 128) == 4 and visualize.upscale_for(224, 128) == 1


def test_visualize_without_a_pretrain_is_refused(tmp_path):
  config = load_config("digits.py", "smoke")
  config.stages = "linprobe,visualize"
  config.linprobe.init_from = "random"
  with pytest.raises(ValueError, match="no MAE to reconstruct with"):
    experiment.validate(config, str(tmp_path))


@pytest.mark.slow
def test_stage_writes_grid_and_tensorboard_images(tmp_path):
  config = load_config("digits.py", "smoke")
  config.stages, config.baselines = "pretrain,visualize", ""
  config.pretrain.num_steps = 2
  config.visualize.num_images, config.visualize.every_steps = 3, 1
  summary = experiment.run(config, str(tmp_path))
  from PIL import Image  # pylint: disable=g-import-not-at-top
  image = np.asarray(Image.open(summary["visualize"]["png"]))
  scale = visualize.upscale_for(32, config.visualize.min_panel_size)
  assert image.shape == (3 * (32 * scale + 2) + 2, 4 * (32 * scale + 2) + 2, 3)
  # samplings.png: original, then masked | reconstruction + visible for each of the three.
  assert summary["visualize"]["samplings"] == ["random", "block", "grid"]
  masks = np.asarray(Image.open(summary["visualize"]["samplings_png"]))
  assert masks.shape == (3 * (32 * scale + 2) + 2, 7 * (32 * scale + 2) + 2, 3)
  # The grid sampling's masked panel: removed patches are grey (128), kept ones at (2i, 2j).
  step, patch = 32 * scale + 2, 4 * scale
  grid_masked = masks[2:2 + 32 * scale, 2 + 5 * step:2 + 5 * step + 32 * scale]
  grey = np.all(grid_masked == 128, axis=-1)
  cells = grey.reshape(8, patch, 8, patch).all(axis=(1, 3))
  rows, cols = np.indices((8, 8))
  np.testing.assert_array_equal(cells[(rows % 2 == 1) | (cols % 2 == 1)], True)
  # An encoder-only export cannot reconstruct, and says what to pass instead.
  with pytest.raises(ValueError, match="encoder only"):
    tasks.load_mae(config, os.path.join(tmp_path, "pretrain", "export"))
  # The command line draws the same grid from the run's workdir, from any directory.
  proc = subprocess.run([script("mae-jax-visualize"), f"--checkpoint={tmp_path}",
                         "--config=digits:smoke", "--config.visualize.num_images=3",
                         f"--out={tmp_path / 'cli'}"], cwd=tmp_path, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert json.loads(proc.stdout.strip().splitlines()[-1])["images"] == 3
  cli_image = np.asarray(Image.open(tmp_path / "cli" / "reconstructions.png"))
  np.testing.assert_array_equal(cli_image, image)
  events = [f for f in os.listdir(tmp_path / "pretrain") if f.startswith("events")]
  data = (tmp_path / "pretrain" / events[0]).read_bytes()
  assert data.count(b"pretrain/reconstructions") == 2          # steps 1 and 2
