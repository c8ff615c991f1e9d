"""Fixed sin-cos position embeddings, as in the official MAE release, on grids of any rank.

They are computed, never trained, so an encoder trained at one resolution runs
at another: the table is simply computed for the new grid.
"""

import numpy as np


def sincos_1d(dim: int, positions: np.ndarray) -> np.ndarray:
  """positions: (M,) -> (M, dim): [sin(p * w_k), cos(p * w_k)], w_k = 10000^(-k / (dim/2))."""
  if dim % 2:
    raise ValueError(f"sin-cos embedding width must be even, got {dim}")
  omega = np.arange(dim // 2, dtype=np.float64) / (dim / 2.0)
  omega = 1.0 / 10000**omega
  out = np.einsum("m,d->md", positions.reshape(-1).astype(np.float64), omega)
  return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_grid(dim: int, grid: tuple[int, ...], cls_token: bool = False) -> np.ndarray:
  """-> (prod(grid) [+1], dim) float32 table for tokens in row-major order on a grid of any
  rank; row 0 is zeros when `cls_token`.

  The channels are split evenly between the axes, the LAST axis first: in 2-D that is the
  official table (sincos_2d, columns then rows); in 1-D it is the 1-D table of the token index
  (a series' patches, a table's columns); in 3-D (depth, height, width) -> (w, h, d) thirds.
  Outside 2-D, a width that the axes' sin-cos pairs do not divide (a 3-D width must be a
  multiple of 6) ends in zero channels: small models keep their power-of-2 widths.
  """
  if len(grid) == 2:
    return sincos_2d(dim, grid, cls_token)
  rank = len(grid)
  per_axis = dim // (2 * rank) * 2
  if not per_axis:
    raise ValueError(f"{rank}-D sin-cos embedding width must be at least {2 * rank}, got {dim}")
  coords = np.meshgrid(*(np.arange(g, dtype=np.float32) for g in grid), indexing="ij")
  emb = np.concatenate([sincos_1d(per_axis, c) for c in reversed(coords)], axis=1)
  emb = np.pad(emb, ((0, 0), (0, dim - emb.shape[1])))
  if cls_token:
    emb = np.concatenate([np.zeros([1, dim]), emb], axis=0)
  return emb.astype(np.float32)


def sincos_2d(dim: int, grid_size: int | tuple[int, int], cls_token: bool = False) -> np.ndarray:
  """-> (gh * gw [+1], dim) float32 table; row 0 is zeros when `cls_token`.

  Tokens are ordered row-major (as patchify orders them). Like the official code,
  the first half of the channels encodes the column index and the second half the
  row index (their `meshgrid(grid_w, grid_h)` puts w first), so tables agree
  number for number with released checkpoints.
  """
  gh, gw = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
  if dim % 4:
    raise ValueError(f"2-D sin-cos embedding width must be divisible by 4, got {dim}")
  cols, rows = np.meshgrid(np.arange(gw, dtype=np.float32), np.arange(gh, dtype=np.float32))
  emb = np.concatenate([sincos_1d(dim // 2, cols), sincos_1d(dim // 2, rows)], axis=1)
  if cls_token:
    emb = np.concatenate([np.zeros([1, dim]), emb], axis=0)
  return emb.astype(np.float32)


def resize_table(table: np.ndarray, new_grid: tuple[int, int],
                 old_grid: tuple[int, int] | None = None) -> np.ndarray:
  """Bicubic resize of a learned table: (1, 1 + gh*gw, D) -> (1, 1 + new_gh*new_gw, D).

  For learned tables only (fine-tuned checkpoints); a sin-cos table is recomputed
  with `sincos_2d` instead. Like the official `interpolate_pos_embed` the cls row
  is kept and the patch rows are resized as an image. Cubic weights are Keys'
  (a = -0.5, JAX's) where torch uses a = -0.75: values differ slightly from a
  torch resize, the geometry is the same. `old_grid` defaults to a square grid.
  """
  import jax  # pylint: disable=g-import-not-at-top (numpy-only module otherwise)

  _, t, d = table.shape
  if old_grid is None:
    side = int(round((t - 1) ** 0.5))
    old_grid = (side, side)
  if old_grid[0] * old_grid[1] != t - 1:
    raise ValueError(f"a table of {t - 1} patch rows does not fit the grid {old_grid}")
  if tuple(old_grid) == tuple(new_grid):
    return np.asarray(table)
  patches = np.asarray(table[0, 1:], np.float32).reshape(*old_grid, d)
  resized = jax.image.resize(patches, (*new_grid, d), method="bicubic", antialias=False)
  resized = np.asarray(resized).reshape(1, -1, d)
  return np.concatenate([np.asarray(table[:, :1], np.float32), resized], axis=1)
