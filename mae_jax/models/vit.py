"""Vision Transformer pieces shared by the MAE and the classifiers.

Layer names follow the official PyTorch release (patch_embed, blocks_i with
norm1/attn.qkv/attn.proj/norm2/mlp.fc1/mlp.fc2, norm) so weights map one to one.
"""

import dataclasses
import math
from typing import Any, Sequence, TypeVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mae_jax.errors import ConfigError
from mae_jax.models import matmul
from mae_jax.models.attention import dot_product_attention
from mae_jax.masking import gather_tokens, masking_ids, patch_grid, patch_shape, patchify

ModuleT = TypeVar("ModuleT", bound=nn.Module)
from mae_jax.models.posembed import sincos_grid

Dtype = Any

# name -> (width, depth, num_heads). MLP width is 4x width in all of them.
SIZES: dict[str, tuple[int, int, int]] = {
    "mu": (32, 2, 2),        # unit tests: compiles in seconds
    "mini": (128, 4, 4),     # CPU quickstart (configs/digits.py)
    "tst": (128, 3, 16),
    "remasker": (32, 6, 4),  # ReMasker's imputer (embed 32, depth 6, 4 heads): "remasker/1"     # PatchTST's self-supervised model (d_model 128, 3 layers, d_ff 512)
    "Ti": (192, 12, 3),
    "S": (384, 12, 6),
    "M": (512, 12, 8),
    "B": (768, 12, 12),
    "L": (1024, 24, 16),
    "H": (1280, 32, 16),
}


@dataclasses.dataclass(frozen=True)
class Variant:
  width: int
  depth: int
  num_heads: int
  patch_size: int
  mlp_ratio: float = 4.0


def decode_variant(variant: str) -> Variant:
  """"B/16" -> Variant(width=768, depth=12, num_heads=12, patch_size=16)."""
  try:
    size, patch = variant.split("/")
    width, depth, heads = SIZES[size]
    return Variant(width, depth, heads, int(patch))
  except (ValueError, KeyError):
    raise ConfigError(
        f"config.model.variant: unknown model variant {variant!r}: expected SIZE/PATCH with "
        f"SIZE one of {', '.join(SIZES)} and PATCH an integer, e.g. 'B/16'") from None


# Official init: xavier-uniform for every Linear, and for the patch-embedding
# conv viewed as a (width, p*p*3) matrix, hence fan-in over all its input axes (PatchEmbed).
xavier = nn.initializers.xavier_uniform()


# The official release uses 1e-6; HF hub ViTMAE configs state 1e-12 (config.json layer_norm_eps).
LN_EPS = 1e-6


def LayerNorm(name: str, dtype: Dtype, eps: float = LN_EPS) -> nn.LayerNorm:  # noqa: N802
  return nn.LayerNorm(epsilon=eps, dtype=dtype, name=name)


def Dense(features: int, name: str, dtype: Dtype) -> nn.Dense:  # noqa: N802
  """The official Linear (xavier-uniform weights, zero bias), with matmul.dot_general (CPUs)."""
  return nn.Dense(features, kernel_init=xavier, dtype=dtype, dot_general=matmul.dot_general,
                  name=name)


class PatchEmbed(nn.Module):
  """patches (N, K, prod(p) * C), as masking.patchify orders them -> (N, K, width).

  The official patch_embed.proj, a stride-p p x p convolution, applied to patches that
  are already cut out, so the MAE encoder embeds only the patches it keeps. Parameters
  as nn.Conv's (kernel (*p, C, width), bias): (p, p, C, width) for images, (p, C, width) for
  series, (p, p, p, C, width) for volumes. One matmul rather than a convolution also
  because on GPUs XLA hands the strided convolution to an implicit-GEMM cuDNN kernel that
  ran at ~37 TFLOP/s on an H100 (2 ms of a 95 ms ViT-L/16 step), where the matmul goes to
  cuBLAS.
  """
  width: int
  patch_size: int | tuple[int, ...]
  dtype: Dtype = jnp.float32
  rank: int = 2          # axes of the input the patches were cut from

  @nn.compact
  def __call__(self, patches: jax.Array) -> jax.Array:
    patch = patch_shape(self.patch_size, self.rank)
    c = patches.shape[-1] // math.prod(patch)
    init = nn.initializers.variance_scaling(1.0, "fan_avg", "uniform",
                                            in_axis=tuple(range(self.rank + 1)), out_axis=-1)
    kernel = self.param("kernel", init, (*patch, c, self.width))
    bias = self.param("bias", nn.initializers.zeros, (self.width,))
    return matmul.matmul(patches.astype(self.dtype),
                         kernel.reshape(-1, self.width).astype(self.dtype)
                         ) + bias.astype(self.dtype)


class DropPath(nn.Module):
  """Stochastic depth: drops the whole residual branch per sample (rng stream 'dropout')."""
  rate: float

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
    if deterministic or self.rate == 0.0:
      return x
    keep = 1.0 - self.rate
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    kept = jax.random.bernoulli(self.make_rng("dropout"), keep, shape)
    return jnp.where(kept, x / keep, jnp.zeros_like(x))


class Attention(nn.Module):
  """Multi-head self-attention with one fused qkv projection (torch layout: q|k|v, then heads).

  `attention` picks the implementation (models/attention.py); all give the same numbers.
  """
  num_heads: int
  dtype: Dtype = jnp.float32
  attention: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array, batch: int, kv_lengths: jax.Array | None = None
               ) -> jax.Array:
    """x: (N * T, D), the tokens of `batch` examples as rows (see Block) -> (N * T, D).
    kv_lengths (N,): only each example's first tokens are attended to."""
    nt, d = x.shape
    n, t, h = batch, nt // batch, self.num_heads
    qkv = Dense(3 * d, "qkv", self.dtype)(x)
    # Tried: q, k, v as three matmuls on kernel slices, to save slicing qkv into copies. XLA
    # then concatenates the gradients instead: 95.1 vs 92.9 ms per ViT-L/16 step (H100), and
    # no faster on CPU.
    q, k, v = jnp.moveaxis(qkv.reshape(n, t, 3, h, d // h), 2, 0)  # each (N, T, H, d/h)
    out = dot_product_attention(q, k, v, self.attention, kv_lengths)
    return Dense(d, "proj", self.dtype)(out.reshape(nt, d))


def gelu(x: jax.Array) -> jax.Array:
  """Exact (erf) GELU, written as torch's nn.GELU computes it.

  jax.nn.gelu(approximate=False) goes through erfc, which XLA's CPU backend evaluates with
  several branches; erf is one cheap polynomial (about half the time on a CPU).
  """
  return 0.5 * x * (1.0 + jax.lax.erf(x * 0.7071067811865476))   # 1/sqrt(2); keeps x's dtype


class Mlp(nn.Module):
  hidden: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    d = x.shape[-1]
    x = Dense(self.hidden, "fc1", self.dtype)(x)
    x = gelu(x)
    return Dense(d, "fc2", self.dtype)(x)


class Block(nn.Module):
  """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""
  num_heads: int
  mlp_ratio: float = 4.0
  drop_path: float = 0.0
  dtype: Dtype = jnp.float32
  ln_eps: float = LN_EPS
  attention: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool = True,
               kv_lengths: jax.Array | None = None) -> jax.Array:
    """x: (N, T, D) -> (N, T, D); kv_lengths (N,): the tokens attended to (Attention)."""
    n, t, d = x.shape
    drop = DropPath(self.drop_path)

    def residual(x: jax.Array, y: jax.Array) -> jax.Array:
      # The drop path masks the (N, T, D) view. Tried: one mask row per token on the (N * T, D)
      # rows, same draws: the ViT-B/16 fine-tune step ran 1.5% slower on a CPU (best of 8
      # paired rounds; 2.8% by median). With no drop path (pretraining, eval) the reshapes cancel.
      return x + drop(y.reshape(n, t, d), deterministic).reshape(n * t, d)

    # The block works on the tokens as rows of one (N * T, D) matrix, as its matmuls see
    # them. Why: the backward pass copies a Dense layer's input transposed (models/matmul.py),
    # and XLA fuses that copy with the layer norm or GELU that made the input; with (N, T, D)
    # operands the fused copy indexes through a 3-d <-> 2-d reshape and ran 4x slower on a CPU
    # (13 vs 3 ms for ViT-B/16's encoder fc2 input at mask 0.75, batch 8).
    x = x.reshape(n * t, d)
    x = residual(x, Attention(self.num_heads, self.dtype, self.attention, name="attn")(
        LayerNorm("norm1", self.dtype, self.ln_eps)(x), n, kv_lengths))
    x = residual(x, Mlp(int(d * self.mlp_ratio), self.dtype, name="mlp")(
        LayerNorm("norm2", self.dtype, self.ln_eps)(x)))
    return x.reshape(n, t, d)


def run_blocks(x: jax.Array, prefix: str, depth: int, num_heads: int, mlp_ratio: float,
               drop_path: float, dtype: Dtype, deterministic: bool, ln_eps: float = LN_EPS,
               attention: str = "auto", taps: Sequence[int] = (),
               kv_lengths: jax.Array | None = None) -> jax.Array | list[jax.Array]:
  """Applies `depth` blocks named prefix_0..; drop path grows linearly 0 -> drop_path as in timm.

  With `taps` (1-based block numbers), returns the outputs of those blocks instead, in order.
  Must be called inside a compact module's __call__ (it creates submodules there).
  """
  rates = np.linspace(0.0, drop_path, depth) if depth else []
  tapped = {}
  for i in range(depth):
    x = Block(num_heads, mlp_ratio, float(rates[i]), dtype, ln_eps, attention,
              name=f"{prefix}_{i}")(x, deterministic, kv_lengths)
    tapped[i + 1] = x
  return [tapped[t] for t in taps] if taps else x


class Encoder(nn.Module):
  """ViT encoder: patch embedding + fixed sin-cos positions + cls token + blocks + norm.

  With `mask_ratio > 0` it keeps a random subset of patches (noise from the
  'masking' rng stream unless given) and sees only those: that is where the
  MAE's speed comes from.

  pos_embed="sincos" computes the table for the input's grid (any resolution);
  "learned" holds it as a parameter `pos_embed` (1, 1 + L, D), as fine-tuned
  official checkpoints (timm) do; resize it with posembed.resize_table.

  mask_tokens=True is the MAE paper's "w/ [M]" ablation (Table 1c): the encoder sees all L
  patches, a learned `mask_token` (plus its position) in place of each removed patch's
  embedding, and returns its tokens in patch order (ids_restore None). It costs what the
  encoder costs without masking; the features it learns meet no mask tokens at fine-tuning.
  With mask_value="zero" the removed patches' values are zeroed before the embedding instead
  (PatchTST's masked pretraining of series).

  Inputs of any rank: (N, T, C) series, (N, H, W, C) images, (N, D, H, W, C) volumes, cut into
  patches of `patch_size` along every axis, with sin-cos positions on that grid.
  """
  width: int
  depth: int
  num_heads: int
  patch_size: int
  mlp_ratio: float = 4.0
  drop_path: float = 0.0
  final_norm: bool = True
  dtype: Dtype = jnp.float32
  ln_eps: float = LN_EPS
  pos_embed: str = "sincos"
  attention: str = "auto"
  mask_tokens: bool = False
  mask_value: str = "learned"   # with mask_tokens: a "learned" token, or "zero" patch values
  patch_stride: int = 0         # series: overlapping patches this far apart (masking.patch_grid)

  @nn.compact
  def __call__(self, images: jax.Array, *, mask_ratio: float = 0.0,
               noise: jax.Array | None = None, train: bool = False,
               features: Sequence[int] = (), observed: jax.Array | None = None
               ) -> tuple[jax.Array, jax.Array | None, jax.Array | None] | list[jax.Array]:
    """images: (N, *S, C) -> tokens (N, 1 + K, D), mask (N, L) | None, ids_restore (N, L) | None.

    K = L without masking or with mask tokens, else num_kept(L, mask_ratio); token 0 is the
    cls token. ids_restore is None without masking or with mask tokens (patch order).
    With `features` (1-based block numbers, dense prediction), returns instead those blocks'
    outputs, each (N, 1 + K, D), before any final norm (as mmsegmentation's ViT backbones).

    observed (N, L) bool: tokens that exist (a table's observed entries). The others never reach
    the encoder: they sort after every existing token in the masking order and are left out of
    every attention (key lengths), and `mask` counts them as removed. Kept slots past a row's
    own count are padding: their outputs mean nothing (MAE hands the decoder mask tokens there).
    With observed, mask_ratio 0 keeps every existing token.
    """
    n, *spatial, _ = images.shape
    grid = patch_grid(spatial, self.patch_size, self.patch_stride)
    pos = jnp.asarray(sincos_grid(self.width, grid, cls_token=True))
    if self.pos_embed == "learned":
      pos = self.param("pos_embed", lambda _: pos[None])[0]
    elif self.pos_embed != "sincos":
      raise ValueError(f"pos_embed must be 'sincos' or 'learned', got {self.pos_embed!r}")

    # Masking picks patches before they are embedded: the embedding is per patch, so
    # embedding only the kept ones gives the same tokens as the official embed-then-gather
    # (tests/test_models.py), skips the removed patches' share of that matmul, and the gather
    # now acts on the images, which need no gradient (no scatter in the backward pass).
    patches = patchify(images, self.patch_size, self.patch_stride)   # (N, L, prod(p) * C)
    pos_patches = pos[1:]                                # (L, D)
    mask = ids_restore = kv_lengths = None
    if mask_ratio > 0.0 or observed is not None:
      if noise is None:
        noise = jax.random.uniform(self.make_rng("masking"), patches.shape[:2])
      if observed is not None:
        if self.mask_tokens:
          raise ValueError("observed tokens and encoder mask tokens do not combine")
        noise = jnp.where(observed, noise, 2.0 + noise)  # uniform noise is < 1: absent last
      ids_keep, mask, ids_restore = masking_ids(noise, mask_ratio)
      if observed is not None:
        kept = ids_keep.shape[1]
        kv_lengths = 1 + jnp.minimum(observed.sum(axis=1), kept)   # the cls token and them
        mask = mask | ~observed
      if not self.mask_tokens:
        patches = gather_tokens(patches, ids_keep)       # (N, K, prod(p) * C)
        pos_patches = pos_patches[ids_keep]              # (N, K, D)
      elif self.mask_value == "zero":                    # PatchTST: the values, not the token
        patches = jnp.where(mask[:, :, None], 0.0, patches)
    x = PatchEmbed(self.width, self.patch_size, self.dtype, rank=len(grid),
                   name="patch_embed")(patches)
    if self.mask_tokens and mask is not None:
      if self.mask_value == "learned":
        token = self.param("mask_token", nn.initializers.normal(0.02), (1, 1, self.width))
        x = jnp.where(mask[:, :, None], token.astype(x.dtype), x)
      elif self.mask_value != "zero":
        raise ValueError(f"mask_value must be 'learned' or 'zero', got {self.mask_value!r}")
      ids_restore = None
    if mask is not None:
      mask = mask.astype(self.dtype)
    x = x + pos_patches.astype(x.dtype)

    cls = self.param("cls_token", nn.initializers.normal(0.02), (1, 1, self.width))
    cls = (cls + pos[:1]).astype(x.dtype)
    x = jnp.concatenate([jnp.broadcast_to(cls, (n, 1, self.width)), x], axis=1)
    bad = [b for b in features if not 1 <= b <= self.depth]
    if bad:
      raise ValueError(f"feature blocks {bad} are not blocks of this {self.depth}-block encoder")
    x = run_blocks(x, "blocks", self.depth, self.num_heads, self.mlp_ratio, self.drop_path,
                   self.dtype, deterministic=not train, ln_eps=self.ln_eps,
                   attention=self.attention, taps=features, kv_lengths=kv_lengths)
    if features:
      return x
    if self.final_norm:
      x = LayerNorm("norm", self.dtype, self.ln_eps)(x)
    return x, mask, ids_restore


def from_variant(cls: type[ModuleT], variant: str, **kwargs: Any) -> ModuleT:
  """`cls` (Encoder, MAE, Classifier) with the ViT sizes of a short name ("B/16"); `kwargs` set
  the rest (decoder size, mask ratio, classes, dtype, ...)."""
  v = decode_variant(variant)
  return cls(width=v.width, depth=v.depth, num_heads=v.num_heads, patch_size=v.patch_size,
             mlp_ratio=v.mlp_ratio, **kwargs)

