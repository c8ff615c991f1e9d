"""3-D segmentation on the MAE encoder: UNETR (Hatamizadeh et al., 2022), as MONAI builds it.

MONAI's monai.networks.nets.UNETR, res_block=True, norm "instance", for volumes (N, X, Y, Z, C):
  encoder: the ViT (the MAE's, same parameter names) on 3-D patches; the patch tokens of the
    `feature_blocks` become (N, X/p, Y/p, Z/p, D) maps; the last one, after the ViT's final
    norm, is the bottleneck;
  encoder1: a residual conv block on the input itself (full resolution, feature_size wide);
  encoder2..: one per skip, a 2x2x2 stride-2 transposed conv then [transposed conv, residual
    block] until the skip reaches its level's resolution;
  decoder..2: from the bottleneck up, each a transposed conv to the next level, the skip
    concatenated, a residual block; then a 1x1x1 conv to the classes (`out`).
A residual block (MONAI's UnetResBlock) is conv3 - instance norm - leaky ReLU (0.01) - conv3 -
instance norm, plus the input (through a 1x1x1 conv and norm where the widths differ), then the
leaky ReLU. Only `out` has a bias, as in MONAI; the instance norms have no parameters (MONAI's
default: torch's InstanceNorm3d, affine=False, eps 1e-5).

Levels: a patch of p = 2^L voxels gives L levels below the input. `feature_blocks` has L
entries: L - 1 skips, finest first (skip i is upsampled L - 1 - i times, to feature_size *
2^(i + 1) channels), then the bottleneck, which must be the last block. For 16^3 patches that is
MONAI's layout with its names (encoder2..4, decoder5..2). The default (3, 6, 9, 12) taps z3, z6,
z9, z12 as the UNETR paper writes (and the study uses); MONAI's code taps hidden_states_out[3],
[6], [9], that is blocks 4, 7, 10 (1-based): feature_blocks=(4, 7, 10, 12) is MONAI's model.
Taps may repeat and must not decrease (a 2-block test model with 8^3 patches: (1, 2, 2)).

Parameters are flax's layouts: convs (kx, ky, kz, in, out) (torch's Conv3d weight (out, in, kx,
ky, kz) transposed), transposed convs (2, 2, 2, in, out) (torch's ConvTranspose3d weight (in,
out, 2, 2, 2) transposed). Names follow MONAI's (encoder2.blocks.0.1.conv1 -> encoder2/
blocks_0_1/conv1) so its weights map one to one.
"""

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from mae_jax.errors import ConfigError
from mae_jax.models.segmenter import Upsample2x
from mae_jax.models.vit import LN_EPS, Dtype, Encoder, LayerNorm

# torch's default Conv init (kaiming_uniform, a=sqrt(5)): uniform with variance 1 / (3 fan_in),
# what MONAI's UNETR trains from.
conv_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def instance_norm(x: jax.Array, eps: float = 1e-5) -> jax.Array:
  """x: (N, *S, C) -> (N, *S, C), each sample's channel normalised over space (biased variance,
  no affine: torch's InstanceNorm3d as MONAI's "instance" norm builds it). Statistics in float32,
  as a bfloat16 mean over a 96^3 volume would lose most of its digits."""
  axes = tuple(range(1, x.ndim - 1))
  y = x.astype(jnp.float32)
  mean = y.mean(axis=axes, keepdims=True)
  var = jnp.square(y - mean).mean(axis=axes, keepdims=True)
  return ((y - mean) * jax.lax.rsqrt(var + eps)).astype(x.dtype)


def leaky_relu(x: jax.Array) -> jax.Array:
  """MONAI's UnetResBlock activation: negative slope 0.01."""
  return nn.leaky_relu(x, 0.01)


def num_levels(patch_size: int) -> int:
  """Patch side 2^L -> L, the resolutions the decoder climbs; anything else raises."""
  levels = int(round(math.log2(patch_size))) if patch_size > 0 else 0
  if patch_size < 2 or 2**levels != patch_size:
    raise ConfigError(f"config.model.variant: UNETR needs a patch size that is a power of 2 "
                      f"(2, 4, 8, 16, ...), got {patch_size}")
  return levels


def check_feature_blocks(feature_blocks: Sequence[int], patch_size: int, depth: int) -> None:
  """Raises unless `feature_blocks` fits an encoder of `depth` blocks with `patch_size` patches:
  log2(patch_size) entries, blocks 1..depth, non-decreasing, the last the encoder's last."""
  levels = num_levels(patch_size)
  blocks = tuple(feature_blocks)
  field = "config.segment3d.feature_blocks"
  if len(blocks) != levels:
    raise ConfigError(f"{field}: patches of {patch_size} give {levels} levels, so {levels} "
                      f"feature blocks (skips finest first, then the bottleneck); got {blocks}")
  if any(not 1 <= b <= depth for b in blocks) or list(blocks) != sorted(blocks):
    raise ConfigError(f"{field}: blocks must be non-decreasing, each in 1..{depth} (the "
                      f"encoder's 1-based blocks); got {blocks}")
  if blocks[-1] != depth:
    raise ConfigError(f"{field}: the last entry is the bottleneck, the encoder's final-normed "
                      f"last block {depth}; got {blocks[-1]}")


class TappedEncoder(Encoder):
  """The ViT Encoder, returning the `features` blocks' outputs (N, 1 + L, D), the last through
  the final norm: MONAI's ViT norms only its last output, and UNETR's bottleneck is that. The
  norm is the Encoder's own `norm`, so an MAE export fills it with the rest."""

  @nn.compact
  def __call__(self, volumes: jax.Array, *, train: bool = False,
               features: Sequence[int] = ()) -> list[jax.Array]:
    maps = super().__call__(volumes, train=train, features=features)
    return [*maps[:-1], LayerNorm("norm", self.dtype, self.ln_eps)(maps[-1])]


CONV_KINDS = ("auto", "xla", "slices")


def resolve_conv(kind: str) -> str:
  """The kind "auto" stands for with 3-D kernels here: "slices" on a CPU, "xla" elsewhere."""
  if kind == "auto":
    return "slices" if jax.default_backend() == "cpu" else "xla"
  return kind


def conv_same(x: jax.Array, kernel: jax.Array, kind: str = "auto") -> jax.Array:
  """Stride-1 'same' convolution: x (N, *S, C), kernel (k, ..., k, C, O), k odd -> (N, *S, O).

  kind "xla": XLA's convolution. "slices" (3-D): the volume's last axis as a batch of 2-D
  slices, one 2-D convolution per tap along that axis, summed. The same numbers; on a CPU XLA
  runs 3-D convolutions as a generic loop, 2-D ones through its tuned kernel, and the slices
  take about half the time (fwd + grad of a 3^3 conv, 32 -> 16 channels at 64^3: 1.0 s ->
  0.54 s on 2 cores). "auto": slices on a CPU, XLA's elsewhere (cuDNN has real 3-D kernels).
  """
  rank = x.ndim - 2
  k = kernel.shape[0]
  kind = resolve_conv(kind)
  if k == 1:   # a matmul over channels
    return jnp.einsum("...c,co->...o", x, kernel.reshape(kernel.shape[-2:]))
  if kind == "xla" or rank != 3:
    spec = "N" + "DHW"[3 - rank:] + "C"     # rank 1, 2 or 3
    return jax.lax.conv_general_dilated(
        x, kernel, (1,) * rank, [(k // 2, k // 2)] * rank,
        dimension_numbers=(spec, spec[1:-1] + "IO", spec))
  if kind != "slices":
    raise ValueError(f"conv kind must be one of {CONV_KINDS}, got {kind!r}")
  n, sx, sy, sz, c = x.shape
  pad = k // 2
  slices = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (pad, pad), (0, 0))).transpose(0, 3, 1, 2, 4)
  out = 0.0
  for t in range(k):
    out = out + jax.lax.conv_general_dilated(
        slices[:, t:t + sz].reshape(n * sz, sx, sy, c), kernel[:, :, t], (1, 1),
        [(pad, pad)] * 2, dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return out.reshape(n, sz, sx, sy, -1).transpose(0, 2, 3, 1, 4)


class Conv(nn.Module):
  """A stride-1 'same' conv of side `kernel` (MONAI's get_conv_layer: no bias); parameters as
  flax's nn.Conv ("kernel" (k, ..., k, in, out), "bias")."""
  features: int
  kernel: int
  dtype: Dtype = jnp.float32
  use_bias: bool = False
  kind: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    rank = x.ndim - 2
    kernel = self.param("kernel", conv_init, (self.kernel,) * rank + (x.shape[-1], self.features))
    y = conv_same(x.astype(self.dtype), kernel.astype(self.dtype), self.kind)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(self.dtype)
    return y


class ResBlock(nn.Module):
  """MONAI's UnetResBlock (kernel 3, stride 1): (N, *S, C) -> (N, *S, features)."""
  features: int
  dtype: Dtype = jnp.float32
  conv: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = lambda k, name: Conv(  # noqa: E731
        self.features, k, self.dtype, kind=self.conv, name=name)
    y = leaky_relu(instance_norm(conv(3, "conv1")(x)))
    y = instance_norm(conv(3, "conv2")(y))
    if x.shape[-1] != self.features:
      x = instance_norm(conv(1, "conv3")(x))
    return leaky_relu(y + x)


class PrUpBlock(nn.Module):
  """MONAI's UnetrPrUpBlock: a skip's map (N, *g, D) -> (N, *(g * 2^(1 + num_layer)), features):
  a transposed conv, then `num_layer` times [transposed conv, residual block]."""
  features: int
  num_layer: int
  dtype: Dtype = jnp.float32
  conv: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = Upsample2x(self.features, self.dtype, use_bias=False, name="transp_conv_init")(x)
    for k in range(self.num_layer):
      x = Upsample2x(self.features, self.dtype, use_bias=False, name=f"blocks_{k}_0")(x)
      x = ResBlock(self.features, self.dtype, self.conv, name=f"blocks_{k}_1")(x)
    return x


class UpBlock(nn.Module):
  """MONAI's UnetrUpBlock: x (N, *g, C), skip (N, *2g, features) -> (N, *2g, features)."""
  features: int
  dtype: Dtype = jnp.float32
  conv: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array, skip: jax.Array) -> jax.Array:
    x = Upsample2x(self.features, self.dtype, use_bias=False, name="transp_conv")(x)
    x = jnp.concatenate([x, skip.astype(x.dtype)], axis=-1)
    return ResBlock(self.features, self.dtype, self.conv, name="conv_block")(x)


class UNETR(nn.Module):
  """ViT encoder (the MAE's, same parameter names) + MONAI's UNETR decoder.

  `apply(variables, volumes, train=...)`: volumes (N, X, Y, Z, C) normalised, each side a
  multiple of the patch -> logits (N, X, Y, Z, num_classes) float32. Parameter-free norms: no
  model state beside the params.
  """
  width: int
  depth: int
  num_heads: int
  patch_size: int
  num_classes: int
  mlp_ratio: float = 4.0
  feature_size: int = 16
  feature_blocks: Sequence[int] = (3, 6, 9, 12)
  drop_path: float = 0.0
  dtype: Dtype = jnp.float32
  ln_eps: float = LN_EPS
  attention: str = "auto"
  conv: str = "auto"            # conv_same's kind: the same numbers either way

  @nn.compact
  def __call__(self, volumes: jax.Array, train: bool = False) -> jax.Array:
    n, *spatial, _ = volumes.shape
    check_feature_blocks(self.feature_blocks, self.patch_size, self.depth)
    levels = num_levels(self.patch_size)
    if any(s % self.patch_size for s in spatial):
      raise ValueError(f"volume sides {tuple(spatial)} are not multiples of the patch "
                       f"{self.patch_size}")
    grid = tuple(s // self.patch_size for s in spatial)
    maps = TappedEncoder(self.width, self.depth, self.num_heads, self.patch_size, self.mlp_ratio,
                         drop_path=self.drop_path, dtype=self.dtype, ln_eps=self.ln_eps,
                         attention=self.attention, name="encoder")(
                             volumes, train=train, features=tuple(self.feature_blocks))
    # Patch tokens are row-major over the grid (masking.patchify), as MONAI's proj_feat reads
    # its (N, L, D) tokens: the cls token dropped, a reshape is all it takes.
    maps = [m[:, 1:].reshape(n, *grid, self.width) for m in maps]
    fs = self.feature_size
    skips = [ResBlock(fs, self.dtype, self.conv, name="encoder1")(volumes.astype(self.dtype))]
    for i, m in enumerate(maps[:-1]):   # finest first: skip i reaches level i + 1
      skips.append(PrUpBlock(fs * 2 ** (i + 1), levels - 2 - i, self.dtype, self.conv,
                             name=f"encoder{i + 2}")(m))
    x = maps[-1]
    for j in range(levels - 1, -1, -1):   # level j: 2^j voxels per side per position
      x = UpBlock(fs * 2**j, self.dtype, self.conv, name=f"decoder{j + 2}")(x, skips[j])
    return Conv(self.num_classes, 1, jnp.float32, use_bias=True, name="out")(
        x.astype(jnp.float32))
