"""The field's plain 3-D U-Net baseline: MONAI's BasicUNet shape, written for flax.

monai.networks.nets.BasicUNet (spatial_dims 3, its defaults) for volumes (N, X, Y, Z, C):
  features (f0, f1, ..., f_{L}, f_up): L + 1 encoder widths, then the width after the last
    upsampling; MONAI's default (32, 32, 64, 128, 256, 32) has 4 levels below the input;
  conv_0: two [3^3 conv (bias) - instance norm (affine) - leaky ReLU 0.1] at full resolution;
  down_1..down_L: a 2^3 max pool, then two such convs (f_{i-1} -> f_i);
  upcat_L..upcat_1: a 2^3 stride-2 transposed conv (with bias) to half its input's width (upcat_1
    keeps the width), the skip of the level concatenated before it (MONAI: cat([skip, up])), then
    two convs to the skip's width (upcat_1: to f_up);
  final_conv: a 1^3 conv (bias) to the classes.
Dropout 0 as MONAI's default, so there is none. Sides must be multiples of 2^L (MONAI pads an
odd side by replicating its border; crops and sliding windows here never have one).

Parameters are flax's layouts (convs (3, 3, 3, in, out); transposed convs (2, 2, 2, in, out);
norms "scale" / "bias"); names follow MONAI's with the wrappers dropped: down_1.convs.conv_0.conv
.weight -> down_1/conv_0/conv/kernel, conv_0.conv_1.adn.N.weight -> conv_0/conv_1/scale,
upcat_4.upsample.deconv.weight -> upcat_4/upsample/kernel, upcat_4.convs.conv_0 ->
upcat_4/convs/conv_0 (tests/test_unet3d.py maps MONAI's weights one to one).
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from mae_jax.models.segmenter import Upsample2x
from mae_jax.models.unetr import Conv, instance_norm
from mae_jax.models.vit import Dtype

# MONAI's BasicUNet defaults.
FEATURES = (32, 32, 64, 128, 256, 32)
NEGATIVE_SLOPE = 0.1
NORM_EPS = 1e-5


def check_features(features: Sequence[int]) -> None:
  """At least 3 positive widths: two encoder levels, then the width after the last upsampling."""
  f = tuple(features)
  if len(f) < 3 or any(int(k) != k or k <= 0 for k in f):
    raise ValueError(f"U-Net features {f}: at least 3 positive widths, the encoder's levels then "
                     f"the last upsampling's, e.g. MONAI's {FEATURES}")


class ConvNormAct(nn.Module):
  """MONAI's Convolution(act, norm) in its default order: 3^3 conv with bias -> instance norm with
  a learned scale and bias -> leaky ReLU. (N, *S, C) -> (N, *S, features)."""
  features: int
  dtype: Dtype = jnp.float32
  conv: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    y = Conv(self.features, 3, self.dtype, use_bias=True, kind=self.conv, name="conv")(x)
    # Statistics in float32 (instance_norm); torch's InstanceNorm3d(affine=True) starts at 1, 0.
    scale = self.param("scale", nn.initializers.ones, (self.features,))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    y = instance_norm(y, NORM_EPS).astype(jnp.float32) * scale + bias
    return nn.leaky_relu(y, NEGATIVE_SLOPE).astype(self.dtype)


class TwoConv(nn.Module):
  """Two ConvNormAct (MONAI's TwoConv): (N, *S, C) -> (N, *S, features)."""
  features: int
  dtype: Dtype = jnp.float32
  conv: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for k in range(2):
      x = ConvNormAct(self.features, self.dtype, self.conv, name=f"conv_{k}")(x)
    return x


class UpCat(nn.Module):
  """MONAI's UpCat (deconv): x (N, *g, C), skip (N, *2g, S) -> (N, *2g, features)."""
  features: int
  halves: bool = True
  dtype: Dtype = jnp.float32
  conv: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array, skip: jax.Array) -> jax.Array:
    width = x.shape[-1] // 2 if self.halves else x.shape[-1]
    up = Upsample2x(width, self.dtype, use_bias=True, name="upsample")(x)
    # The skip first, as MONAI concatenates: the next conv's input channels are in this order.
    x = jnp.concatenate([skip.astype(up.dtype), up], axis=-1)
    return TwoConv(self.features, self.dtype, self.conv, name="convs")(x)


class BasicUNet3D(nn.Module):
  """`apply(variables, volumes, train=...)`: volumes (N, X, Y, Z, C), sides multiples of
  2^(len(features) - 2) -> logits (N, X, Y, Z, num_classes) float32. No model state (instance
  norms keep no running statistics); `train` changes nothing (no dropout), it is the segment3d
  stage's interface."""
  num_classes: int
  features: Sequence[int] = FEATURES
  dtype: Dtype = jnp.float32
  conv: str = "auto"            # models/unetr.py conv_same's kind: the same numbers either way

  @nn.compact
  def __call__(self, volumes: jax.Array, train: bool = False) -> jax.Array:
    del train
    check_features(self.features)
    encoder, up_width = tuple(self.features[:-1]), self.features[-1]
    levels = len(encoder) - 1
    spatial = volumes.shape[1:-1]
    if any(s % 2**levels for s in spatial):
      raise ValueError(f"volume sides {tuple(spatial)} are not multiples of 2^{levels} (the "
                       f"U-Net's {levels} poolings)")
    x = TwoConv(encoder[0], self.dtype, self.conv, name="conv_0")(volumes.astype(self.dtype))
    skips = [x]
    for i in range(1, levels + 1):
      x = nn.max_pool(x, (2,) * len(spatial), strides=(2,) * len(spatial))
      x = TwoConv(encoder[i], self.dtype, self.conv, name=f"down_{i}")(x)
      skips.append(x)
    for i in range(levels, 0, -1):   # upcat_i brings level i to level i - 1
      width = encoder[i - 1] if i > 1 else up_width
      x = UpCat(width, halves=i > 1, dtype=self.dtype, conv=self.conv, name=f"upcat_{i}")(
          x, skips[i - 1])
    return Conv(self.num_classes, 1, jnp.float32, use_bias=True, name="final_conv")(
        x.astype(jnp.float32))
