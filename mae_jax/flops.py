"""Model FLOPs of one training step per image, counted the way PyTorch's FlopCounterMode does.

Why count by hand: MFU is model FLOPs over peak. XLA's own count is of the program it
compiled, which leaves out the matmuls it hands to libraries (cuBLAS on GPUs), and counts
elementwise work and recomputation besides. Counting as torch.utils.flop_counter does makes
our MFU and the PyTorch side's comparable (tests/test_bench_step.py checks that the two
counts agree on a real run):
  - 2 * m * n * k per matmul;
  - training = forward + backward: 3x the forward matmuls (gradients of inputs and weights);
    3.5x for attention's two matmuls (the fused backward recomputes the scores), and 2x for
    the patch embedding (the images need no gradient);
  - elementwise work, norms, softmax and the optimizer update are not counted.
The pretraining count embeds every patch, as the official model and torch's counter do; our
encoder embeds only the kept ones (models/vit.py), 0.6% fewer FLOPs for B/16 @224 at mask 0.75.
MFU keeps the official count so that both frameworks' figures share one numerator.
"""

import math
from typing import Any, Callable, Iterator

import jax
import jax.extend

from mae_jax.masking import num_kept
from mae_jax.models.vit import Variant, decode_variant


def _blocks(tokens: int, width: int, depth: int, mlp_ratio: float = 4.0) -> tuple[int, int]:
  """Forward (dense, attention) FLOPs of `depth` transformer blocks over `tokens` tokens."""
  hidden = int(width * mlp_ratio)
  dense = 2 * tokens * (3 * width * width + width * width + 2 * width * hidden)
  attention = 2 * 2 * tokens * tokens * width          # q @ k^T and probs @ v
  return depth * dense, depth * attention


def _patch_embed(variant: Variant, patches: int) -> int:
  """Forward FLOPs of the patch embedding: one (p * p * 3 -> width) matmul per patch."""
  return 2 * patches * variant.patch_size ** 2 * 3 * variant.width


def pretrain_flops_per_image(variant: str, image_size: int, mask_ratio: float,
                             decoder: tuple[int, int, int] = (512, 8, 16)) -> int:
  """One MAE training step (forward + backward), per image. decoder: (width, depth, heads)."""
  v = decode_variant(variant)
  patches = (image_size // v.patch_size) ** 2
  pixels = v.patch_size ** 2 * 3
  kept = 1 + num_kept(patches, mask_ratio)             # + cls token
  width = decoder[0]
  enc_dense, enc_attn = _blocks(kept, v.width, v.depth, v.mlp_ratio)
  dec_dense, dec_attn = _blocks(1 + patches, width, decoder[1])
  embed = _patch_embed(v, patches)
  dense = enc_dense + dec_dense + 2 * kept * v.width * width + 2 * (1 + patches) * width * pixels
  return 2 * embed + 3 * dense + 7 * (enc_attn + dec_attn) // 2


def classifier_flops_per_image(variant: str, image_size: int, num_classes: int) -> int:
  """One fine-tuning step (encoder on every patch, head; forward + backward), per image."""
  v = decode_variant(variant)
  patches = (image_size // v.patch_size) ** 2
  dense, attention = _blocks(1 + patches, v.width, v.depth, v.mlp_ratio)
  embed = _patch_embed(v, patches)
  return 2 * embed + 3 * (dense + 2 * v.width * num_classes) + 7 * attention // 2


def forward_matmul_flops(fn: Callable[..., Any], *args: Any) -> int:
  """Forward FLOPs of fn(*args) counted from its jaxpr: 2 * m * n * k per dot_general and per
  convolution tap, nothing else (the count above, for any model: pyramids, heads, 1-D and 3-D
  patch embeddings). A transposed convolution counts only its non-zero taps, as torch does:
  XLA writes it as a convolution over a zero-dilated input."""
  return _jaxpr_flops(jax.make_jaxpr(fn)(*args).jaxpr)


def _jaxpr_flops(jaxpr: Any) -> int:
  total = 0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == "dot_general":
      (lhs_contract, _), _ = eqn.params["dimension_numbers"]
      lhs = eqn.invars[0].aval.shape
      total += 2 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in lhs_contract)
    elif name == "conv_general_dilated":
      rhs = eqn.invars[1].aval.shape
      out_features = rhs[eqn.params["dimension_numbers"].rhs_spec[0]]
      taps = math.prod(eqn.outvars[0].aval.shape) * math.prod(rhs) // out_features
      total += 2 * taps // math.prod(eqn.params["lhs_dilation"])
    times = eqn.params.get("length", 1) if name == "scan" else 1
    for sub in _sub_jaxprs(eqn.params):
      total += times * _jaxpr_flops(sub)
  return total


def _sub_jaxprs(params: dict[str, Any]) -> Iterator[Any]:
  """The jaxprs nested in an equation (jit, remat, custom_vjp, scan, cond branches)."""
  for value in params.values():
    for v in value if isinstance(value, (tuple, list)) else (value,):
      if isinstance(v, jax.extend.core.ClosedJaxpr):
        yield v.jaxpr
      elif isinstance(v, jax.extend.core.Jaxpr):
        yield v
