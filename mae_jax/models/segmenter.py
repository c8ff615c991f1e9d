"""Semantic segmentation on the MAE encoder: a feature pyramid from ViT blocks, a UPerNet head.

mmsegmentation's ViT + UPerNet, the MAE paper's ADE20K protocol:
  encoder: the outputs of `feature_blocks` (the study's 3, 6, 9, 12; mmsegmentation's MAE config
    taps 4, 6, 8, 12), patch tokens as (N, h, w, D) maps on the patch grid;
  neck "feature2pyramid" (mmsegmentation's Feature2Pyramid): one map per scale, x4 (2x2 stride-2
    transposed conv, BatchNorm, GELU, transposed conv), x2 (transposed conv), x1, x0.5 (2x2 max
    pool); "simple" (ViTDet's simple pyramid): the same four scales from the last block alone,
    each then 1x1 and 3x3 convs with LayerNorm;
  head: UPerNet (a pyramid pooling module on the coarsest level, an FPN top-down path over all
    four, fused by a 3x3 conv, dropout, a 1x1 classifier);
  auxiliary head: an FCN on one level (mmsegmentation: the x1 level, loss weight 0.4).
head "linear" instead (DINOv2's linear segmentation probe, mmseg's BNHead): the `feature_blocks`
  outputs concatenated on the patch grid, BatchNorm, a 1x1 classifier; no neck, no auxiliary
  head, logits on the patch grid. It cannot segment by itself, so with a frozen encoder it
  measures what the encoder's patch tokens hold.
Logits come at the finest level's resolution: with the default levels (4, 2, 1, 0.5), 4 /
patch_size of the input (1/4 for 16-pixel patches; `rescales` (2, 1, 0.5) gives the same 1/4
for 8-pixel ones, at a quarter of the head's cost); the loss and the evaluation resize them to
the labels.

Convolutions are (kh, kw, in, out) as flax's; BatchNorm momentum 0.9 is torch's 0.1.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from mae_jax.models.vit import LN_EPS, Dtype, Encoder, gelu
from mae_jax.spatial import adaptive_avg_pool, resize_bilinear

NECKS = ("feature2pyramid", "simple")
HEADS = ("upernet", "linear")
# mmcv's ConvModule init: kaiming normal, fan_out, for the ReLU that follows.
conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


class ConvBNReLU(nn.Module):
  """mmcv's ConvModule as UPerNet uses it: conv without bias (padding k // 2), BatchNorm, ReLU."""
  features: int
  kernel: int
  bn_axis_name: str | None = None
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    pad = self.kernel // 2
    x = nn.Conv(self.features, (self.kernel, self.kernel), padding=[(pad, pad)] * 2,
                use_bias=False, kernel_init=conv_init, dtype=self.dtype, name="conv")(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                     axis_name=self.bn_axis_name, dtype=self.dtype, name="bn")(x)
    return nn.relu(x)


class Upsample2x(nn.Module):
  """A 2x...x2, stride-2 transposed convolution over any number of axes: each input position
  becomes a 2x...x2 block of outputs, out[2i + a, 2j + b] = x[i, j] @ kernel[a, b] + bias (in
  2-D). Written as one matmul and a reshape (the windows do not overlap); kernel (*(2,) * rank,
  in, out) is torch's ConvTranspose2d/3d weight (in, out, 2, ...) transposed. MONAI's UNETR
  upsamples without a bias (use_bias=False)."""
  features: int
  dtype: Dtype = jnp.float32
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x: (N, *S, C) -> (N, *(2 S), features); (N, H, W, C) -> (N, 2H, 2W, features)."""
    n, *spatial, c = x.shape
    rank = len(spatial)
    kernel = self.param("kernel", nn.initializers.lecun_normal(in_axis=rank, out_axis=rank + 1),
                        (2,) * rank + (c, self.features))
    # "nhwc,abco->nhawbo" in 2-D: each input axis followed by its kernel axis, then a reshape
    # merges the pairs.
    axes, offsets = "hwdtuv"[:rank], "abefgi"[:rank]
    out = "n" + "".join(a + b for a, b in zip(axes, offsets)) + "o"
    y = jnp.einsum(f"n{axes}c,{offsets}co->{out}", x.astype(self.dtype),
                   kernel.astype(self.dtype))
    y = y.reshape(n, *(2 * s for s in spatial), self.features)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(self.dtype)
    return y


class Feature2Pyramid(nn.Module):
  """Maps (N, h, w, D) of several blocks -> one map per rescale factor (4, 2, 1, 0.5)."""
  rescales: Sequence[float] = (4, 2, 1, 0.5)
  bn_axis_name: str | None = None
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, maps: Sequence[jax.Array], train: bool) -> list[jax.Array]:
    if len(maps) != len(self.rescales):
      raise ValueError(f"{len(maps)} feature blocks for {len(self.rescales)} pyramid levels")
    out = []
    for i, (x, r) in enumerate(zip(maps, self.rescales)):
      d = x.shape[-1]
      if r == 4:
        x = Upsample2x(d, self.dtype, name=f"up4_{i}_0")(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                         axis_name=self.bn_axis_name, dtype=self.dtype, name=f"up4_{i}_bn")(x)
        x = Upsample2x(d, self.dtype, name=f"up4_{i}_1")(gelu(x))
      elif r == 2:
        x = Upsample2x(d, self.dtype, name=f"up2_{i}")(x)
      elif r == 0.5:
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
      elif r != 1:
        raise ValueError(f"pyramid rescale {r} is not one of 4, 2, 1, 0.5")
      out.append(x)
    return out


class SimplePyramid(nn.Module):
  """ViTDet's simple feature pyramid from the last block's (N, h, w, D) map: scales `rescales`
  (of 4, 2, 1, 0.5), each followed by a 1x1 and a 3x3 conv (no bias) with channel LayerNorm,
  `channels` wide."""
  channels: int = 256
  rescales: Sequence[float] = (4, 2, 1, 0.5)
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> list[jax.Array]:
    del train
    d = x.shape[-1]
    norm = lambda name: nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name=name)  # noqa: E731
    make = {
        4: lambda: Upsample2x(d // 4, self.dtype, name="up4_1")(
            gelu(norm("up4_norm")(Upsample2x(d // 2, self.dtype, name="up4_0")(x)))),
        2: lambda: Upsample2x(d // 2, self.dtype, name="up2")(x),
        1: lambda: x,
        0.5: lambda: nn.max_pool(x, (2, 2), strides=(2, 2)),
    }
    out = []
    for i, r in enumerate(self.rescales):
      if r not in make:
        raise ValueError(f"pyramid rescale {r} is not one of 4, 2, 1, 0.5")
      y = make[r]()
      y = nn.Conv(self.channels, (1, 1), use_bias=False, dtype=self.dtype, name=f"lateral_{i}")(y)
      y = norm(f"lateral_{i}_norm")(y)
      y = nn.Conv(self.channels, (3, 3), padding=[(1, 1)] * 2, use_bias=False, dtype=self.dtype,
                  name=f"output_{i}")(y)
      out.append(norm(f"output_{i}_norm")(y))
    return out


class Classify(nn.Module):
  """Dropout, then a 1x1 conv to the classes (mmsegmentation's cls_seg: std 0.01), float32."""
  num_classes: int
  dropout: float = 0.1

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = nn.Dropout(self.dropout)(x, deterministic=not train)
    return nn.Conv(self.num_classes, (1, 1), kernel_init=nn.initializers.normal(0.01),
                   dtype=jnp.float32, name="conv_seg")(x.astype(jnp.float32))


class LinearHead(nn.Module):
  """Patch-token maps (N, h, w, C_i) -> logits (N, h, w, K): concatenated, BatchNorm, 1x1."""
  num_classes: int
  bn_axis_name: str | None = None
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, maps: Sequence[jax.Array], train: bool) -> jax.Array:
    x = jnp.concatenate(list(maps), axis=-1)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                     axis_name=self.bn_axis_name, dtype=self.dtype, name="bn")(x)
    return Classify(self.num_classes, 0.0, name="classify")(x, train)


class UPerHead(nn.Module):
  """UPerNet over pyramid levels, finest first: (N, h_i, w_i, C_i) -> logits (N, h_0, w_0, K)."""
  channels: int
  num_classes: int
  pool_scales: Sequence[int] = (1, 2, 3, 6)
  dropout: float = 0.1
  bn_axis_name: str | None = None
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, levels: Sequence[jax.Array], train: bool) -> jax.Array:
    def conv(name: str, kernel: int, x: jax.Array) -> jax.Array:
      return ConvBNReLU(self.channels, kernel, self.bn_axis_name, self.dtype, name=name)(x, train)

    # Pyramid pooling on the coarsest level, fused into its lateral.
    top = levels[-1]
    pooled = [resize_bilinear(conv(f"psp_{i}", 1, adaptive_avg_pool(top, s)), top.shape[1:3])
              for i, s in enumerate(self.pool_scales)]
    laterals = [conv(f"lateral_{i}", 1, x) for i, x in enumerate(levels[:-1])]
    laterals.append(conv("psp_bottleneck", 3, jnp.concatenate([top, *pooled], axis=-1)))
    # Top-down: each level adds the (already summed) coarser one, upsampled.
    for i in range(len(laterals) - 1, 0, -1):
      laterals[i - 1] = laterals[i - 1] + resize_bilinear(laterals[i], laterals[i - 1].shape[1:3])
    outs = [conv(f"fpn_{i}", 3, x) for i, x in enumerate(laterals[:-1])] + [laterals[-1]]
    size = outs[0].shape[1:3]
    fused = conv("fpn_bottleneck", 3,
                 jnp.concatenate([resize_bilinear(o, size) for o in outs], axis=-1))
    return Classify(self.num_classes, self.dropout, name="classify")(fused, train)


class FCNHead(nn.Module):
  """mmsegmentation's FCNHead (the auxiliary head): `num_convs` 3x3 ConvBNReLU, classifier."""
  channels: int
  num_classes: int
  num_convs: int = 1
  dropout: float = 0.1
  bn_axis_name: str | None = None
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    for i in range(self.num_convs):
      x = ConvBNReLU(self.channels, 3, self.bn_axis_name, self.dtype, name=f"conv_{i}")(x, train)
    return Classify(self.num_classes, self.dropout, name="classify")(x, train)


class Segmenter(nn.Module):
  """ViT encoder (the MAE's, same parameter names) + pyramid neck + UPerNet (+ FCN auxiliary).

  `apply(variables, images, train=...)` -> (logits (N, r H / p, r W / p, num_classes) for the
  finest rescale r, aux logits at the x1 level's resolution or None), float32; images
  (N, H, W, 3) normalised.
  """
  width: int
  depth: int
  num_heads: int
  patch_size: int
  num_classes: int
  mlp_ratio: float = 4.0
  feature_blocks: Sequence[int] = (3, 6, 9, 12)   # one per level (feature2pyramid)
  rescales: Sequence[float] = (4, 2, 1, 0.5)       # the pyramid's levels, finest first
  neck: str = "feature2pyramid"
  head: str = "upernet"             # or "linear" (a probe of the patch tokens: no neck)
  neck_channels: int = 256          # "simple" neck's output width
  channels: int = 512               # UPerNet's width (mmsegmentation's MAE config: 768)
  pool_scales: Sequence[int] = (1, 2, 3, 6)
  dropout: float = 0.1
  aux_channels: int = 256           # 0 = no auxiliary head
  drop_path: float = 0.1
  bn_axis_name: str | None = None   # the data axis: BatchNorm statistics over the global batch
  dtype: Dtype = jnp.float32
  ln_eps: float = LN_EPS
  pos_embed: str = "sincos"
  attention: str = "auto"

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False
               ) -> tuple[jax.Array, jax.Array | None]:
    n, h, w, _ = images.shape
    grid = (h // self.patch_size, w // self.patch_size)
    if self.neck not in NECKS:
      raise ValueError(f"neck must be one of {', '.join(NECKS)}, got {self.neck!r}")
    if self.head not in HEADS:
      raise ValueError(f"head must be one of {', '.join(HEADS)}, got {self.head!r}")
    linear = self.head == "linear"
    taps = (tuple(self.feature_blocks) if linear or self.neck == "feature2pyramid"
            else (self.depth,))
    maps = Encoder(self.width, self.depth, self.num_heads, self.patch_size, self.mlp_ratio,
                   drop_path=self.drop_path, dtype=self.dtype, ln_eps=self.ln_eps,
                   pos_embed=self.pos_embed, attention=self.attention,
                   name="encoder")(images, train=train, features=taps)
    maps = [m[:, 1:].reshape(n, *grid, self.width) for m in maps]    # drop the cls token
    if linear:
      return LinearHead(self.num_classes, self.bn_axis_name, self.dtype,
                        name="decode_head")(maps, train), None
    if self.neck == "simple":
      levels = SimplePyramid(self.neck_channels, tuple(self.rescales), self.dtype,
                             name="neck")(maps[-1], train)
    else:
      levels = Feature2Pyramid(tuple(self.rescales), bn_axis_name=self.bn_axis_name,
                               dtype=self.dtype, name="neck")(maps, train)
    logits = UPerHead(self.channels, self.num_classes, self.pool_scales, self.dropout,
                      self.bn_axis_name, self.dtype, name="decode_head")(levels, train)
    aux = None
    if self.aux_channels:
      aux = FCNHead(self.aux_channels, self.num_classes, 1, self.dropout, self.bn_axis_name,
                    self.dtype, name="auxiliary_head")(levels[list(self.rescales).index(1)],
                                                       train)
    return logits, aux
