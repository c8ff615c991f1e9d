"""Fixed 2-D sin-cos position embeddings, as in the official MAE release.

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
