"""Patches and random masking: the pure-`jnp` half of MAE.

Images are NHWC. A patch vector is ordered (row in patch, column in patch,
channel), the order of the official `patchify`, so predictions and targets line
up with released decoders.
"""

import jax
import jax.numpy as jnp


def patchify(images: jax.Array, patch_size: int) -> jax.Array:
  """images: (N, H, W, C) -> (N, H/p * W/p, p * p * C)."""
  n, h, w, c = images.shape
  p = patch_size
  if h % p or w % p:
    raise ValueError(f"image size {h}x{w} is not divisible by the patch size {p}")
  x = images.reshape(n, h // p, p, w // p, p, c)
  x = x.transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, (h // p) * (w // p), p * p * c)


def unpatchify(patches: jax.Array, patch_size: int, grid: tuple[int, int] | None = None,
               channels: int = 3) -> jax.Array:
  """patches: (N, L, p * p * C) -> (N, H, W, C); `grid` = (H/p, W/p), square by default."""
  n, l, _ = patches.shape
  p = patch_size
  if grid is None:
    side = int(round(l**0.5))
    if side * side != l:
      raise ValueError(f"{l} patches do not form a square grid; pass grid=(rows, cols)")
    grid = (side, side)
  gh, gw = grid
  x = patches.reshape(n, gh, gw, p, p, channels)
  x = x.transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, gh * p, gw * p, channels)


def num_kept(num_patches: int, mask_ratio: float) -> int:
  """Patches the encoder sees: int(L * (1 - mask_ratio)), a static int as in the official code."""
  return int(num_patches * (1 - mask_ratio))


def masking_ids(noise: jax.Array, mask_ratio: float
                ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Which tokens each sample keeps: the K = num_kept(L, mask_ratio) with the smallest noise.

  noise: (N, L), any real values (uniform in practice). Returns
    ids_keep: (N, K) int, the kept tokens' indices, in shuffled order,
    mask: (N, L) bool, True where a token was removed, original order,
    ids_restore: (N, L) int, the inverse permutation: gathering
      [kept tokens, mask tokens] with it restores the original order.
  """
  keep = num_kept(noise.shape[1], mask_ratio)
  ids_shuffle = jnp.argsort(noise, axis=1)
  ids_restore = jnp.argsort(ids_shuffle, axis=1)
  return ids_shuffle[:, :keep], ids_restore >= keep, ids_restore


def gather_tokens(x: jax.Array, ids: jax.Array) -> jax.Array:
  """x: (N, L, D), ids: (N, K) -> (N, K, D), x[n, ids[n, k]]."""
  return jnp.take_along_axis(x, ids[:, :, None], axis=1)


def random_masking(x: jax.Array, mask_ratio: float, noise: jax.Array
                   ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Keeps a random subset of tokens per sample.

  x: (N, L, D); noise: (N, L), any real values (uniform in practice); the tokens
  with the smallest noise are kept. Returns
    x_kept: (N, K, D) with K = num_kept(L, mask_ratio), in shuffled order,
    mask: (N, L) float, 1 where a token was removed, 0 where kept, original order,
    ids_restore: (N, L) int, the inverse permutation: gathering
      [x_kept, mask tokens] with it restores the original order.
  """
  ids_keep, mask, ids_restore = masking_ids(noise, mask_ratio)
  return gather_tokens(x, ids_keep), mask.astype(x.dtype), ids_restore


def unshuffle(tokens: jax.Array, ids_restore: jax.Array) -> jax.Array:
  """tokens: (N, L, D) in shuffled order (kept first) -> (N, L, D) in patch order."""
  return gather_tokens(tokens, ids_restore)
