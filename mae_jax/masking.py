"""Patches and random masking: the pure-`jnp` half of MAE, for any number of axes.

Inputs are channels-last: series (N, T, C), images NHWC, volumes (N, D, H, W, C). An image's
patch vector is ordered (row in patch, column in patch, channel), the order of the official
`patchify`, so predictions and targets line up with released decoders.
"""

import math
from typing import Sequence

import jax
import jax.numpy as jnp

# How the removed patches are chosen (MAE paper, Figure 6): "random" (the official MAE), "block"
# (BEiT's blockwise masking: random rectangles) and "grid" (one patch kept per 2x2 cell).
MASK_SAMPLINGS = ("random", "block", "grid")
_BLOCK_MIN_AREA = 4        # BEiT's min_num_patches
_BLOCK_MIN_ASPECT = 0.3    # BEiT's min_aspect: rectangles between 0.3 and 1/0.3 tall per wide


def patch_shape(patch_size: int | Sequence[int], rank: int) -> tuple[int, ...]:
  """The patch's extent along each of `rank` axes: an int is the same along every axis."""
  if isinstance(patch_size, int):
    return (patch_size,) * rank
  if len(patch_size) != rank:
    raise ValueError(f"patch size {tuple(patch_size)} has {len(patch_size)} axes, the input "
                     f"{rank}")
  return tuple(int(p) for p in patch_size)


def patch_grid(spatial: Sequence[int], patch_size: int | Sequence[int], stride: int = 0
               ) -> tuple[int, ...]:
  """The token grid of an input whose axes (between batch and channels) are `spatial`.

  stride 0: patches tile the input. A 1-D input may take overlapping patches `stride` apart
  (PatchTST's patch 16, stride 8): (T - p) // stride + 1 of them, the first starting at
  (T - p) % stride so that the last ends on the last step.
  """
  patch = patch_shape(patch_size, len(spatial))
  if stride and stride != patch[0]:
    if len(spatial) != 1 or not 0 < stride <= patch[0] or spatial[0] < patch[0]:
      raise ValueError(f"patch stride {stride}: for series (1-D) only, 0 < stride <= the patch "
                       f"length {patch[0]} <= the length {spatial[0]}")
    return ((spatial[0] - patch[0]) // stride + 1,)
  if any(s % p for s, p in zip(spatial, patch)):
    raise ValueError(f"input size {'x'.join(map(str, spatial))} is not divisible by the patch "
                     f"size {'x'.join(map(str, patch))}")
  return tuple(s // p for s, p in zip(spatial, patch))


def patchify(x: jax.Array, patch_size: int | Sequence[int], stride: int = 0) -> jax.Array:
  """x: (N, *S, C) -> (N, L, prod(p) * C), L = prod(S / p), tokens in row-major grid order.

  Any number of axes S: a series (N, T, C), an image (N, H, W, C), a volume (N, D, H, W, C).
  A patch vector is ordered (its first axis, ..., its last axis, channel). A series may take
  overlapping patches `stride` steps apart (patch_grid).
  """
  n, *spatial, c = x.shape
  patch = patch_shape(patch_size, len(spatial))
  grid = patch_grid(spatial, patch, stride)
  rank = len(spatial)
  if stride and stride != patch[0]:
    first = (spatial[0] - patch[0]) % stride
    steps = first + stride * jnp.arange(grid[0])[:, None] + jnp.arange(patch[0])[None, :]
    return x[:, steps].reshape(n, grid[0], patch[0] * c)
  x = x.reshape(n, *(v for g, p in zip(grid, patch) for v in (g, p)), c)
  # (N, g1, p1, g2, p2, ..., C) -> (N, g1, g2, ..., p1, p2, ..., C)
  x = x.transpose(0, *range(1, 2 * rank, 2), *range(2, 2 * rank + 1, 2), 2 * rank + 1)
  return x.reshape(n, math.prod(grid), math.prod(patch) * c)


def unpatchify(patches: jax.Array, patch_size: int | Sequence[int],
               grid: Sequence[int] | None = None, channels: int = 3) -> jax.Array:
  """patches: (N, L, prod(p) * C) -> (N, *S, C), the inverse of patchify on a token `grid`;
  a square 2-D grid by default."""
  n, l, _ = patches.shape
  if grid is None:
    side = int(round(l**0.5))
    if side * side != l:
      raise ValueError(f"{l} patches do not form a square grid; pass grid=(rows, cols)")
    grid = (side, side)
  rank = len(grid)
  patch = patch_shape(patch_size, rank)
  x = patches.reshape(n, *grid, *patch, channels)
  # (N, g1, ..., p1, ..., C) -> (N, g1, p1, g2, p2, ..., C)
  x = x.transpose(0, *(v for i in range(rank) for v in (1 + i, 1 + rank + i)), 2 * rank + 1)
  return x.reshape(n, *(g * p for g, p in zip(grid, patch)), channels)


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


def sampling_error(kind: str, grid_hw: tuple[int, int], mask_ratio: float) -> str | None:
  """Why `kind` cannot mask a (rows, cols) patch grid at `mask_ratio`, or None if it can."""
  if kind not in MASK_SAMPLINGS:
    return f"unknown mask sampling {kind!r}; one of {', '.join(MASK_SAMPLINGS)}"
  if kind != "random" and len(grid_hw) != 2:
    return f"{kind} sampling is for 2-D patch grids; a {len(grid_hw)}-D input takes 'random'"
  if kind == "grid" and (mask_ratio != 0.75 or grid_hw[0] % 2 or grid_hw[1] % 2):
    return (f"grid sampling keeps one patch of every 2x2 cell: it needs mask_ratio 0.75 (got "
            f"{mask_ratio}) and an even patch grid (got {grid_hw[0]}x{grid_hw[1]})")
  return None


def example_noise(key: jax.Array, ids: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  """Uniform masking noise, one key per example: ids (N,) -> (N, *shape). Example i draws from
  fold_in(key, ids[i]), so its mask is the same whatever the devices and micro-batches."""
  return jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(key, i), shape))(ids)


def mask_noise(kind: str, key: jax.Array, batch: int, grid_hw: tuple[int, int],
               mask_ratio: float) -> jax.Array:
  """Per-sample noise (batch, L) float32 whose `masking_ids(noise, mask_ratio)` removes the
  patches that sampling `kind` chooses, on a (rows, cols) grid of L patches in patchify order.

    random: uniform noise, every patch equally likely to go (the official MAE; exactly
      `jax.random.uniform(key, (batch, L))`).
    block: random rectangles (BEiT's blockwise masking: area uniform between 4 patches and what
      is left to remove, aspect ratio log-uniform in [0.3, 1/0.3], placed uniformly) are removed
      until num_removed = L - num_kept(L, mask_ratio) patches are, the last ones 1x1 if need be.
    grid: the patches at (2i, 2j) are kept, every other one removed (mask_ratio 0.75 only).
  The kept patches get noise in [0, 0.5), the removed ones [0.5, 1): masking stays a gather on
  the argsort of the noise, with the same static kept count, whatever the sampling.
  """
  num_patches = math.prod(grid_hw)
  if kind == "random":     # any grid: 1-D series, 2-D images, 3-D volumes
    return jax.random.uniform(key, (batch, num_patches))
  error = sampling_error(kind, grid_hw, mask_ratio)
  if error:
    raise ValueError(error)
  rows, cols = grid_hw
  key, noise_key = jax.random.split(key)
  if kind == "grid":
    r, c = jnp.arange(rows)[:, None], jnp.arange(cols)[None, :]
    removed = jnp.broadcast_to(((r % 2) | (c % 2)).astype(bool).reshape(-1),
                               (batch, num_patches))
  else:
    num_removed = num_patches - num_kept(num_patches, mask_ratio)
    removed = jax.vmap(lambda k: _blocks(k, grid_hw, num_removed).reshape(-1))(
        jax.random.split(key, batch))
  u = jax.random.uniform(noise_key, (batch, num_patches))
  return jnp.where(removed, 0.5 + 0.5 * u, 0.5 * u)


def _blocks(key: jax.Array, grid_hw: tuple[int, int], num_removed: int) -> jax.Array:
  """(rows, cols) bool: a union of random rectangles covering `num_removed` patches."""
  rows, cols = grid_hw
  r, c = jnp.arange(rows)[:, None], jnp.arange(cols)[None, :]
  log_aspect = math.log(_BLOCK_MIN_ASPECT)

  def body(state):
    mask, count, attempt, key = state
    key, k_area, k_aspect, k_top, k_left = jax.random.split(key, 5)
    remaining = num_removed - count
    low = jnp.minimum(_BLOCK_MIN_AREA, remaining).astype(jnp.float32)
    area = jax.random.uniform(k_area, (), minval=low, maxval=remaining.astype(jnp.float32))
    aspect = jnp.exp(jax.random.uniform(k_aspect, (), minval=log_aspect, maxval=-log_aspect))
    h = jnp.clip(jnp.round(jnp.sqrt(area * aspect)).astype(jnp.int32), 1, rows)
    w = jnp.clip(jnp.round(jnp.sqrt(area / aspect)).astype(jnp.int32), 1, cols)
    top = jax.random.randint(k_top, (), 0, rows - h + 1)
    left = jax.random.randint(k_left, (), 0, cols - w + 1)
    rect = (r >= top) & (r < top + h) & (c >= left) & (c < left + w)
    added = jnp.sum(rect & ~mask)
    fits = (added > 0) & (added <= remaining)   # never past the target: the count stays exact
    return (jnp.where(fits, mask | rect, mask), count + jnp.where(fits, added, 0), attempt + 1,
            key)

  def more(state):
    _, count, attempt, _ = state
    return (count < num_removed) & (attempt < 20 * rows * cols)

  start = (jnp.zeros((rows, cols), bool), jnp.int32(0), jnp.int32(0), key)
  return jax.lax.while_loop(more, body, start)[0]


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
