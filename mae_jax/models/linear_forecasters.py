"""LTSF-Linear's forecasters (Zeng et al., "Are Transformers Effective for Time Series
Forecasting?", AAAI 2023; cure-lab/LTSF-Linear): one linear map from the look-back to the
horizon, with a decomposition (DLinear) or a last-value normalisation (NLinear) around it.

Inputs are (N, M, L): N windows, M variables, L look-back steps; outputs (N, M, H). With
`individual=False` (the papers' default) the M variables share the weights, so each variable is
its own univariate series (channel independence); `individual=True` gives each its own.

  DLinear: trend = moving average of the look-back (odd kernel, 25 in the paper, the ends
    padded by repeating the first and last value so the trend keeps L steps); remainder =
    look-back - trend; forecast = linear(trend) + linear(remainder).
  NLinear: subtract the look-back's last value, linear, add it back: a level shift between
    the training and test periods passes straight through.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


def moving_average(x: jax.Array, kernel: int) -> jax.Array:
  """x: (..., L) -> (..., L): the mean of each step's `kernel` neighbours (odd kernel), the
  series' first and last values repeated (kernel - 1) / 2 times beyond its ends."""
  if kernel < 1 or kernel % 2 == 0:
    raise ValueError(f"the moving average's kernel must be odd and positive, not {kernel}")
  half = (kernel - 1) // 2
  pad = [(0, 0)] * (x.ndim - 1) + [(half, half)]
  padded = jnp.pad(x, pad, mode="edge")
  length = x.shape[-1]
  # kernel shifted views summed: exact in float32 for the short kernels used here, unlike a
  # cumulative sum over the whole padded look-back.
  return sum(padded[..., i:i + length] for i in range(kernel)) / kernel


def decompose(x: jax.Array, kernel: int) -> tuple[jax.Array, jax.Array]:
  """x: (..., L) -> (remainder, trend), both (..., L), remainder + trend = x (Autoformer's
  series_decomp, as DLinear uses it)."""
  trend = moving_average(x, kernel)
  return x - trend, trend


class ChannelLinear(nn.Module):
  """(N, M, L) -> (N, M, features): one linear map over the last axis, shared by the M
  variables, or one per variable (`individual`)."""
  features: int
  individual: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if not self.individual:
      return nn.Dense(self.features, name="shared")(x)
    _, m, length = x.shape
    kernel = self.param("kernel", nn.initializers.lecun_normal(in_axis=1, out_axis=2,
                                                               batch_axis=(0,)),
                        (m, length, self.features))
    bias = self.param("bias", nn.initializers.zeros, (m, self.features))
    return jnp.einsum("nml,mlh->nmh", x, kernel) + bias


class DLinear(nn.Module):
  """(N, M, L) -> (N, M, horizon): linear(trend) + linear(remainder)."""
  horizon: int
  kernel: int = 25
  individual: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    remainder, trend = decompose(x, self.kernel)
    return (ChannelLinear(self.horizon, self.individual, name="trend")(trend)
            + ChannelLinear(self.horizon, self.individual, name="remainder")(remainder))


class NLinear(nn.Module):
  """(N, M, L) -> (N, M, horizon): linear(x - last value) + last value."""
  horizon: int
  individual: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    last = x[..., -1:]
    return ChannelLinear(self.horizon, self.individual, name="linear")(x - last) + last
