"""Reconstructions as PNG grids: original | masked | reconstruction | reconstruction + visible,
and the same images masked by each mask sampling (random | block | grid, the MAE paper's
Figure 6) with what the model makes of each.

Drawing only: the models come from weights.load_mae, the images from the data pipeline.

  # After (or as) the pretrain stage: "visualize" in config.stages writes WORKDIR/visualize/.
  # On any MAE checkpoint with its decoder:
  mae-jax-visualize --checkpoint=WORKDIR --config=configs/digits.py --out=/tmp/recon
  mae-jax-visualize --checkpoint=mae_visualize_vit_large.pth --config=pets --out=/tmp/recon

--checkpoint takes a run's workdir (its WORKDIR/pretrain/checkpoints train state, the only
place that keeps the decoder), such a checkpoints folder itself, an official MAE .pth with a
decoder (mae_visualize_*.pth, mae_pretrain_* files hold the encoder only), an HF ViTMAE
directory, or an mae-jax-convert export of a whole MAE. The pretrain stage's `export/` holds
the encoder alone and cannot reconstruct. Images come from the config's dataset, eval split.

A model trained with norm_pix_loss predicts every patch normalised by its own mean and
variance, which a removed patch does not reveal. Its prediction is mapped back with the
statistics of the image's visible patches (the mean over them of each patch's mean and
variance), so the panel shows only what the model knows. Without norm_pix_loss the prediction
is already in the normalised image space, as in the official demo.
"""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from etils import epath

from mae_jax.masking import mask_noise, patchify, sampling_error, unpatchify
from mae_jax.pixels import normalize

PANELS = ("original", "masked", "reconstruction", "reconstruction + visible")


# ---- pure helpers -------------------------------------------------------------------------------

def unnormalize_pred(pred: jax.Array, patches: jax.Array, mask: jax.Array, norm_pix_loss: bool,
                     eps: float = 1e-6) -> jax.Array:
  """pred, patches: (N, L, P); mask: (N, L), 1 = removed -> pred (N, L, P) in the patches' space.

  With `norm_pix_loss`, pred * sqrt(v + eps) + m, where m and v are the means over the image's
  visible patches of each patch's mean and unbiased variance (the loss's statistics).
  """
  if not norm_pix_loss:
    return pred
  patches = patches.astype(jnp.float32)
  visible = 1.0 - mask.astype(jnp.float32)
  count = jnp.maximum(visible.sum(axis=1, keepdims=True), 1.0)              # (N, 1)
  mean = (patches.mean(axis=-1) * visible).sum(axis=1, keepdims=True) / count
  var = (patches.var(axis=-1, ddof=1) * visible).sum(axis=1, keepdims=True) / count
  return pred * jnp.sqrt(var + eps)[..., None] + mean[..., None]


def reconstruction_panels(images: jax.Array, pred: jax.Array, mask: jax.Array, patch_size: int,
                          norm_pix_loss: bool, mean: tuple[float, ...], std: tuple[float, ...],
                          fill: float = 0.5) -> jax.Array:
  """images: (N, H, W, C) normalised; pred: (N, L, p*p*C); mask: (N, L) -> (N, 4, H, W, C).

  The four PANELS in pixel space [0, 1] (x * std + mean, clipped); removed patches of the
  masked panel are `fill` grey.
  """
  n, h, w, c = images.shape
  grid = (h // patch_size, w // patch_size)
  patches = patchify(images, patch_size)
  recon = unnormalize_pred(pred.astype(jnp.float32), patches, mask, norm_pix_loss)
  removed = mask.astype(jnp.float32)[..., None]                             # (N, L, 1)
  to_image = lambda x: unpatchify(x, patch_size, grid, c)  # noqa: E731
  pixels = lambda x: jnp.clip(x * jnp.asarray(std) + jnp.asarray(mean), 0.0, 1.0)  # noqa: E731
  original = pixels(images.astype(jnp.float32))
  masked = jnp.where(to_image(jnp.broadcast_to(removed, patches.shape)) > 0, fill, original)
  pasted = to_image(patches * (1 - removed) + recon * removed)
  return jnp.stack([original, masked, pixels(to_image(recon)), pixels(pasted)], axis=1)


def panel_grid(panels: np.ndarray, pad: int = 2, scale: int = 1) -> np.ndarray:
  """panels: (N, K, H, W, C) in [0, 1] -> uint8 (N*(S*H+pad)+pad, K*(S*W+pad)+pad, C), S = scale.

  One row per image, one column per panel, white `pad`-pixel gutters; each panel enlarged
  `scale` times by pixel repetition (so 8x8 patches stay sharp).
  """
  panels = np.asarray(panels, np.float32)
  if scale > 1:
    panels = panels.repeat(scale, axis=2).repeat(scale, axis=3)
  n, k, h, w, c = panels.shape
  out = np.ones((n * (h + pad) + pad, k * (w + pad) + pad, c), np.float32)
  for i in range(n):
    for j in range(k):
      top, left = pad + i * (h + pad), pad + j * (w + pad)
      out[top:top + h, left:left + w] = panels[i, j]
  return np.round(out * 255).astype(np.uint8)


def upscale_for(image_size: int, min_panel_size: int) -> int:
  """The integer enlargement that makes a panel at least `min_panel_size` pixels wide."""
  return max(1, math.ceil(min_panel_size / image_size))


def save_png(path: str, grid: np.ndarray) -> str:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  epath.Path(path).parent.mkdir(parents=True, exist_ok=True)
  with epath.Path(path).open("wb") as f:
    Image.fromarray(grid).save(f, format="PNG")
  return path


# ---- models -------------------------------------------------------------------------------------

def reconstruct(model: nn.Module, params: Any, images: jax.Array, seed: int,
                mask_ratio: float | None = None, sampling: str = "random"
                ) -> tuple[jax.Array, jax.Array]:
  """images: (N, H, W, 3) normalised -> pred (N, L, p*p*3), mask (N, L); the mask drawn from
  `seed` by `sampling` (masking.MASK_SAMPLINGS)."""
  if mask_ratio is not None and mask_ratio > 0:
    model = model.clone(mask_ratio=mask_ratio)
  n, h, w, _ = images.shape
  grid = (h // model.patch_size, w // model.patch_size)
  noise = mask_noise(sampling, jax.random.key(seed), n, grid, model.mask_ratio)
  _, pred, mask = jax.jit(lambda p, x, z: model.apply({"params": p}, x, noise=z, train=False))(
      params, images, noise)
  return pred, mask


def grid_png(model: nn.Module, params: Any, images: np.ndarray, vis: ml_collections.ConfigDict,
             mean: tuple[float, ...], std: tuple[float, ...], sampling: str = "random"
             ) -> np.ndarray:
  """The uint8 grid of `images` (N, H, W, 3) pixels in [0, 255], as config.visualize `vis` says,
  masked by `sampling`."""
  images = normalize(images, mean, std)
  pred, mask = reconstruct(model, params, images, vis.seed, vis.mask_ratio, sampling)
  panels = reconstruction_panels(images, pred, mask, model.patch_size,
                                 model.norm_pix_loss, mean, std)
  return panel_grid(np.asarray(panels), scale=upscale_for(images.shape[1], vis.min_panel_size))


def samplings_png(model: nn.Module, params: Any, images: np.ndarray,
                  vis: ml_collections.ConfigDict, mean: tuple[float, ...], std: tuple[float, ...],
                  samplings: list[str]) -> tuple[np.ndarray, list[str]]:
  """-> (uint8 grid, the samplings drawn). A row per image: the original, then for each
  sampling that can mask at the model's ratio its masked image and reconstruction + visible."""
  images = normalize(images, mean, std)
  ratio = vis.mask_ratio if vis.mask_ratio > 0 else model.mask_ratio
  grid_hw = (images.shape[1] // model.patch_size, images.shape[2] // model.patch_size)
  drawn = [s for s in samplings if sampling_error(s, grid_hw, ratio) is None]
  columns = []
  for sampling in drawn:
    pred, mask = reconstruct(model, params, images, vis.seed, vis.mask_ratio, sampling)
    panels = reconstruction_panels(images, pred, mask, model.patch_size, model.norm_pix_loss,
                                   mean, std)
    if not columns:
      columns.append(panels[:, 0])
    columns += [panels[:, 1], panels[:, 3]]
  stacked = np.stack([np.asarray(c) for c in columns], axis=1)
  return panel_grid(stacked, scale=upscale_for(images.shape[1], vis.min_panel_size)), drawn


def palette(num_classes: int) -> np.ndarray:
  """(256, 3) float colours in [0, 1]: fixed per class; IGNORE_LABEL (and unused ids) black."""
  colours = np.random.default_rng(0).uniform(0.15, 1.0, size=(256, 3))
  colours[num_classes:] = 0.0
  return colours
