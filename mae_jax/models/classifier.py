"""Classifiers on the MAE encoder: fine-tuning and linear probing."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from mae_jax.models.vit import LN_EPS, Dtype, Encoder, LayerNorm


class Classifier(nn.Module):
  """Encoder on all patches, pooled, then a linear head.

  global_pool=True: mean of the patch tokens + `fc_norm` (the official fine-tune
  default; the encoder's own final norm is dropped, as theirs is). False: the cls
  token after the encoder's norm. `probe=True` is the official linear probe: a
  frozen encoder (no gradient reaches it) and BatchNorm without affine before the head.
  """
  width: int
  depth: int
  num_heads: int
  patch_size: int
  num_classes: int
  mlp_ratio: float = 4.0
  global_pool: bool = True
  drop_path: float = 0.0
  probe: bool = False
  head_init_std: float = 2e-5
  bn_axis_name: str | None = None  # set to the data axis so BatchNorm statistics are global
  dtype: Dtype = jnp.float32
  ln_eps: float = LN_EPS
  pos_embed: str = "sincos"      # "learned" for fine-tuned official checkpoints (see Encoder)
  attention: str = "auto"        # models/attention.py; the same numbers either way

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    """images: (N, H, W, 3) -> logits (N, num_classes) float32."""
    tokens, _, _ = Encoder(self.width, self.depth, self.num_heads, self.patch_size,
                           self.mlp_ratio, drop_path=self.drop_path,
                           final_norm=not self.global_pool, dtype=self.dtype,
                           ln_eps=self.ln_eps, pos_embed=self.pos_embed,
                           attention=self.attention,
                           name="encoder")(images, train=train and not self.probe)
    if self.global_pool:
      x = LayerNorm("fc_norm", self.dtype, self.ln_eps)(tokens[:, 1:].mean(axis=1))
    else:
      x = tokens[:, 0]
    if self.probe:
      x = jax.lax.stop_gradient(x)
      # torch momentum 0.1 == flax momentum 0.9.
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-6,
                       use_bias=False, use_scale=False, axis_name=self.bn_axis_name,
                       dtype=jnp.float32, name="bn")(x.astype(jnp.float32))
    logits = nn.Dense(self.num_classes, kernel_init=nn.initializers.normal(self.head_init_std),
                      dtype=jnp.float32, name="head")(x.astype(jnp.float32))
    return logits
