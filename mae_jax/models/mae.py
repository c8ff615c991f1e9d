"""The masked autoencoder: encoder on visible patches, light decoder on all of them; inputs of
any rank (series, images, volumes) through masking.patchify."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from mae_jax.losses import mae_loss
from mae_jax.masking import patch_grid, patchify, unshuffle
from mae_jax.models.posembed import sincos_grid
from mae_jax.models.vit import LN_EPS, Dense, Dtype, Encoder, LayerNorm, run_blocks


class Decoder(nn.Module):
  """Embeds the kept tokens, fills in mask tokens, unshuffles, predicts each patch's values."""
  width: int
  depth: int
  num_heads: int
  mlp_ratio: float = 4.0
  dtype: Dtype = jnp.float32
  ln_eps: float = LN_EPS
  attention: str = "auto"

  @nn.compact
  def __call__(self, tokens: jax.Array, ids_restore: jax.Array | None, grid: tuple[int, ...],
               patch_dim: int, kept_valid: jax.Array | None = None) -> jax.Array:
    """tokens: (N, 1 + K, D_enc), ids_restore: (N, L) -> pred (N, L, patch_dim), L = prod(grid).

    patch_dim: values per patch (p * p * 3 for RGB images). ids_restore None: the tokens are
    all L patches' already, in patch order (an encoder that took mask tokens itself); the
    decoder then adds none. kept_valid (N, K) bool: the kept slots that hold a token (Encoder's
    `observed`); the others get the mask token too.
    """
    x = Dense(self.width, "decoder_embed", self.dtype)(tokens)
    mask_token = self.param("mask_token", nn.initializers.normal(0.02), (1, 1, self.width))
    if kept_valid is not None:
      kept = jnp.where(kept_valid[:, :, None], x[:, 1:], mask_token.astype(x.dtype))
      x = jnp.concatenate([x[:, :1], kept], axis=1)
    if ids_restore is not None:
      n, l = ids_restore.shape
      fill = jnp.broadcast_to(mask_token.astype(x.dtype), (n, l + 1 - x.shape[1], self.width))
      patches = unshuffle(jnp.concatenate([x[:, 1:], fill], axis=1), ids_restore)
      x = jnp.concatenate([x[:, :1], patches], axis=1)
    x = x + jnp.asarray(sincos_grid(self.width, grid, cls_token=True)).astype(x.dtype)
    x = run_blocks(x, "decoder_blocks", self.depth, self.num_heads, self.mlp_ratio, 0.0,
                   self.dtype, deterministic=True, ln_eps=self.ln_eps, attention=self.attention)
    x = LayerNorm("decoder_norm", self.dtype, self.ln_eps)(x)
    pred = Dense(patch_dim, "decoder_pred", self.dtype)(x)
    return pred[:, 1:]


class MAE(nn.Module):
  """Masked autoencoder. `apply(variables, images, noise=...)` -> (loss, pred, mask).

  Without `noise`, the masking noise comes from the 'masking' rng stream.
  """
  width: int
  depth: int
  num_heads: int
  patch_size: int
  decoder_width: int = 512
  decoder_depth: int = 8
  decoder_heads: int = 16
  mlp_ratio: float = 4.0
  mask_ratio: float = 0.75
  norm_pix_loss: bool = False
  dtype: Dtype = jnp.float32
  ln_eps: float = LN_EPS
  pos_embed: str = "sincos"      # the encoder's; the decoder's is always computed
  attention: str = "auto"        # models/attention.py; the same numbers either way
  encoder_mask_tokens: bool = False   # the paper's "w/ [M]" ablation (models/vit.py Encoder)
  mask_value: str = "learned"         # with encoder_mask_tokens; "zero": PatchTST's masking
  patch_stride: int = 0               # series: overlapping patches (masking.patch_grid)

  def setup(self):
    self.encoder = Encoder(self.width, self.depth, self.num_heads, self.patch_size,
                           self.mlp_ratio, dtype=self.dtype, ln_eps=self.ln_eps,
                           pos_embed=self.pos_embed, attention=self.attention,
                           mask_tokens=self.encoder_mask_tokens, mask_value=self.mask_value,
                           patch_stride=self.patch_stride)
    self.decoder = Decoder(self.decoder_width, self.decoder_depth, self.decoder_heads,
                           mlp_ratio=self.mlp_ratio, dtype=self.dtype, ln_eps=self.ln_eps,
                           attention=self.attention)

  def __call__(self, images: jax.Array, noise: jax.Array | None = None, train: bool = True,
               observed: jax.Array | None = None, mask_ratio: float | None = None
               ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """images: (N, *S, C) normalised (NHWC images; (N, T, C) series; (N, D, H, W, C) volumes)
    -> loss (), pred (N, L, prod(p) * C) float32, mask (N, L).

    observed (N, L) bool: the tokens that exist (a table's observed entries; Encoder); the
    loss then counts the removed tokens that exist only. mask_ratio overrides the module's (0
    with `observed`: every existing token visible, as when imputing).
    """
    ratio = self.mask_ratio if mask_ratio is None else mask_ratio
    tokens, mask, ids_restore = self.encoder(images, mask_ratio=ratio, noise=noise,
                                             train=train, observed=observed)
    if mask is None:
      raise ValueError(f"mask_ratio must be in (0, 1), got {ratio}")
    kept_valid = None
    if observed is not None:
      kept = tokens.shape[1] - 1
      kept_valid = jnp.arange(kept) < jnp.minimum(observed.sum(axis=1), kept)[:, None]
    target = patchify(images, self.patch_size, self.patch_stride)
    grid = patch_grid(images.shape[1:-1], self.patch_size, self.patch_stride)
    pred = self.decoder(tokens, ids_restore, grid, target.shape[-1],
                        kept_valid).astype(jnp.float32)
    scored = mask if observed is None else mask * observed
    loss = mae_loss(target, pred, scored, self.norm_pix_loss)
    return loss, pred, mask
