"""Forecasters of multivariate series: a look-back window (N, L, M) -> the next H steps (N, H, M).

Every forecaster here is channel-independent, as PatchTST: each of the M variables is a
separate univariate series through the same weights, and RevIN (instance normalisation: each
series' own look-back mean and standard deviation, with a learned affine per variable)
takes out the level and scale before the network and puts them back after it.

  transformer: the MAE encoder over the series' patches (1-D patch embedding, 1-D sin-cos
    positions, models/vit.py) and PatchTST's head: the patch tokens flattened, one linear layer
    to the horizon. Its "encoder" subtree loads from an MAE pretrain export.
  linear: one linear layer from the look-back to the horizon (NLinear/DLinear's baseline).
  dlinear, nlinear: LTSF-Linear's DLinear and NLinear (models/linear_forecasters.py); their
    papers run them without RevIN (config.ltsf.revin).
  rnn, lstm, gru: a recurrent layer over the look-back steps, the last state -> linear -> H.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from mae_jax.models.linear_forecasters import DLinear, NLinear
from mae_jax.models.vit import LN_EPS, Dtype, Encoder

KINDS = ("transformer", "linear", "dlinear", "nlinear", "rnn", "lstm", "gru")
_CELLS = {"rnn": nn.SimpleCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}


def instance_norm(x: jax.Array, eps: float = 1e-5) -> tuple[jax.Array, jax.Array, jax.Array]:
  """x: (N, L, M) -> (normalised x, mean (N, 1, M), std (N, 1, M)) over each series' L steps
  (RevIN's statistics: population variance, eps inside the square root)."""
  mean = x.mean(axis=1, keepdims=True)
  std = jnp.sqrt(x.var(axis=1, keepdims=True) + eps)
  return (x - mean) / std, mean, std


def channels_to_batch(x: jax.Array) -> jax.Array:
  """(N, L, M) -> (N * M, L, 1): every variable its own series (channel independence)."""
  n, l, m = x.shape
  return x.transpose(0, 2, 1).reshape(n * m, l, 1)


class Forecaster(nn.Module):
  """(N, L, M) look-back -> (N, H, M) forecast, in the units of the input."""
  kind: str
  horizon: int
  num_variables: int
  # transformer: the encoder's sizes (an MAE variant's, so its export loads)
  width: int = 128
  depth: int = 3
  num_heads: int = 16
  patch_size: int = 12
  patch_stride: int = 0          # 0: patches tile the look-back; else overlapping (PatchTST's 8)
  mlp_ratio: float = 4.0
  drop_path: float = 0.0
  head_dropout: float = 0.0
  probe: bool = False            # a frozen encoder (linear probe): no gradient reaches it
  hidden: int = 64               # rnn / lstm / gru state width
  moving_avg: int = 25           # dlinear: the trend's moving-average kernel (odd)
  individual: bool = False       # dlinear, nlinear: a linear map per variable, not shared
  revin: bool = True
  dtype: Dtype = jnp.float32
  ln_eps: float = LN_EPS
  attention: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    n, _, m = x.shape
    if m != self.num_variables:
      raise ValueError(f"the model forecasts {self.num_variables} variables, the input has {m}")
    x = x.astype(jnp.float32)
    if self.revin:
      x, mean, std = instance_norm(x)
      weight = self.param("revin_weight", nn.initializers.ones, (m,))
      bias = self.param("revin_bias", nn.initializers.zeros, (m,))
      x = x * weight + bias
    if self.kind == "dlinear":
      y = DLinear(self.horizon, self.moving_avg, self.individual, name="dlinear")(
          x.transpose(0, 2, 1))
    elif self.kind == "nlinear":
      y = NLinear(self.horizon, self.individual, name="nlinear")(x.transpose(0, 2, 1))
    else:
      y = self._channel_independent(x, train).reshape(n, m, self.horizon)
    y = y.transpose(0, 2, 1)                                     # (N, H, M)
    if self.revin:
      y = (y - bias) / (weight + 1e-10)
      y = y * std + mean
    return y

  def _channel_independent(self, x: jax.Array, train: bool) -> jax.Array:
    """(N, L, M) -> (N * M, H): the transformer, linear or recurrent forecaster on every
    variable as its own series."""
    n, m = x.shape[0], x.shape[2]
    series = channels_to_batch(x)                               # (N * M, L, 1)
    if self.kind == "transformer":
      if not self.patch_stride:
        # The last whole patches of the look-back, as PatchTST cuts them (512 steps: 42 x 12).
        series = series[:, series.shape[1] % self.patch_size:]
      tokens, _, _ = Encoder(self.width, self.depth, self.num_heads, self.patch_size,
                             self.mlp_ratio, drop_path=self.drop_path, dtype=self.dtype,
                             ln_eps=self.ln_eps, attention=self.attention,
                             patch_stride=self.patch_stride,
                             name="encoder")(series, train=train and not self.probe)
      features = tokens[:, 1:].reshape(n * m, -1)                # PatchTST's flatten head
      if self.probe:
        features = jax.lax.stop_gradient(features)
      features = nn.Dropout(self.head_dropout, deterministic=not train)(features)
    elif self.kind == "linear":
      features = series[..., 0]
    elif self.kind in _CELLS:
      cell = _CELLS[self.kind](self.hidden, name="cell")
      carry, _ = nn.RNN(cell, return_carry=True, name="rnn")(series)
      features = carry[1] if self.kind == "lstm" else carry   # an LSTM's carry is (c, h)
    else:
      raise ValueError(f"unknown forecaster {self.kind!r}; one of {', '.join(KINDS)}")
    return nn.Dense(self.horizon, dtype=jnp.float32, name="head")(features.astype(jnp.float32))
