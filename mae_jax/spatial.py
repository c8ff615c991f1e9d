"""Pure-`jnp` operations on (N, H, W, C) feature maps, written as torch computes them (the
reference implementations of the dense-prediction heads are PyTorch)."""

import jax
import jax.numpy as jnp


def adaptive_avg_pool(x: jax.Array, size: int) -> jax.Array:
  """x: (N, H, W, C) -> (N, size, size, C), torch's adaptive_avg_pool2d: cell i averages rows
  floor(i * H / size) .. ceil((i + 1) * H / size) - 1 (cells may overlap), columns alike."""
  _, h, w, _ = x.shape

  def bounds(n: int) -> list[tuple[int, int]]:
    return [(i * n // size, -(-(i + 1) * n // size)) for i in range(size)]

  rows = [jnp.stack([x[:, r0:r1, c0:c1].mean(axis=(1, 2)) for c0, c1 in bounds(w)], axis=1)
          for r0, r1 in bounds(h)]
  return jnp.stack(rows, axis=1)


def resize_bilinear(x: jax.Array, size: tuple[int, int]) -> jax.Array:
  """x: (N, H, W, C) -> (N, *size, C), torch's interpolate(mode="bilinear",
  align_corners=False): half-pixel centres, no antialiasing when shrinking."""
  if tuple(x.shape[1:3]) == tuple(size):
    return x
  return jax.image.resize(x, (x.shape[0], *size, x.shape[3]), "bilinear",
                          antialias=False).astype(x.dtype)
