"""Scaled dot-product attention: XLA's fused op, or a batch-chunked form that is faster on CPUs.

Why two forms: on GPUs and TPUs `jax.nn.dot_product_attention` lets XLA (or cuDNN) fuse the
whole attention. On a CPU, XLA runs it as separate passes over the (N, H, T, T) scores, and
its softmax saves more than it needs for the backward pass. The "chunked" form computes
the scores as per-example batched matmuls with a softmax whose backward pass needs only its
output, and bounds the scores held at once by computing CHUNK_BYTES of them at a time
(`lax.map`). Measured on a 2-core CPU (fwd+bwd of the MAE decoder's attention at B/16
@224, batch 8: 16 heads, 197 tokens, 20 MB of scores), medians of 12 rounds: 59 ms with
XLA's op, 47 ms chunked, PyTorch's SDPA kernel 42 ms. Both forms give the same numbers up
to float rounding (tests/test_attention.py).

On NVIDIA GPUs with bfloat16 or float16 inputs, "auto" asks for cuDNN's fused (flash)
attention kernel by name: `jax.nn.dot_product_attention` without `implementation` runs XLA's
unfused form there too.
"""

import jax
import jax.numpy as jnp

ATTENTION_KINDS = ("auto", "xla", "chunked", "cudnn")

# Scores per lax.map step of the chunked form: a bound on the memory they take, not a cache
# size. On a 2-core CPU one lax.map step for the whole batch beat steps of
# 1 MiB (one example: 62 vs 47 ms median on the B/16 decoder shape above; 89 vs 56 ms on
# Ti/8's decoder at batch 64), where the loop's slicing, copies and per-step cost outweigh
# keeping the scores in cache. So batches up to this size run as one vmap.
CHUNK_BYTES = 64 << 20


@jax.custom_vjp
def softmax(logits: jax.Array) -> jax.Array:
  """Softmax over the last axis whose backward pass needs only its output."""
  return jax.nn.softmax(logits, axis=-1)


def _softmax_fwd(logits: jax.Array) -> tuple[jax.Array, jax.Array]:
  probs = jax.nn.softmax(logits, axis=-1)
  return probs, probs


def _softmax_bwd(probs: jax.Array, grad: jax.Array) -> tuple[jax.Array]:
  return (probs * (grad - jnp.sum(grad * probs, axis=-1, keepdims=True)),)


softmax.defvjp(_softmax_fwd, _softmax_bwd)


def _attend_one(qkv: tuple[jax.Array, ...]) -> jax.Array:
  """One example: q (T, H, D), k and v (S, H, D)[, the number of keys that count] ->
  (T, H, D); softmax in float32."""
  q, k, v, *length = qkv
  scores = jnp.einsum("thd,shd->hts", q * (q.shape[-1] ** -0.5), k).astype(jnp.float32)
  if length:
    scores = jnp.where(jnp.arange(k.shape[0]) < length[0], scores, -1e30)
  probs = softmax(scores).astype(v.dtype)
  return jnp.einsum("hts,shd->thd", probs, v)


def chunked_attention(q: jax.Array, k: jax.Array, v: jax.Array,
                      chunk_bytes: int = CHUNK_BYTES, kv_lengths: jax.Array | None = None
                      ) -> jax.Array:
  """q: (N, T, H, D), k and v: (N, S, H, D) -> (N, T, H, D), a few examples at a time.
  kv_lengths (N,): only each example's first kv_lengths keys count."""
  n, t, h, _ = q.shape
  per_example = h * t * k.shape[1] * 4          # float32 scores
  chunk = max(1, chunk_bytes // per_example)
  args = (q, k, v) if kv_lengths is None else (q, k, v, kv_lengths)
  if chunk >= n:
    return jax.vmap(_attend_one)(args)
  return jax.lax.map(_attend_one, args, batch_size=chunk)


def cudnn_attention(q: jax.Array, k: jax.Array, v: jax.Array,
                    implementation: str = "cudnn", kv_lengths: jax.Array | None = None
                    ) -> jax.Array:
  """q, k, v: (N, T, H, D) -> (N, T, H, D) through cuDNN's fused kernel.

  JAX's cuDNN path (0.11) rejects odd sequence lengths when differentiated (it counts its own
  placeholder as a bias); ViT lengths are 1 + patches, often odd (197, 99). So an odd length is
  padded by one token, and the padding is masked out of every softmax by sequence lengths.
  `implementation` is for tests on machines without cuDNN ("xla" takes the same lengths).
  """
  n, t = q.shape[:2]
  if t % 2 == 0 and kv_lengths is None:
    return jax.nn.dot_product_attention(q, k, v, implementation=implementation)
  if t % 2:
    q, k, v = (jnp.pad(x, ((0, 0), (0, 1), (0, 0), (0, 0))) for x in (q, k, v))
  lengths = jnp.full((n,), t, jnp.int32)
  keys = lengths if kv_lengths is None else kv_lengths.astype(jnp.int32)
  out = jax.nn.dot_product_attention(q, k, v, implementation=implementation,
                                     query_seq_lengths=lengths, key_value_seq_lengths=keys)
  return out[:, :t]


def auto_kind(dtype: jnp.dtype) -> str:
  """What "auto" runs for inputs of `dtype` on the default backend."""
  if jax.default_backend() == "cpu":
    return "chunked"
  return "cudnn" if cudnn_runs(dtype) else "xla"


def cudnn_runs(dtype: jnp.dtype) -> bool:
  """Whether kind "cudnn" runs here for inputs of `dtype`: an NVIDIA GPU backend (not ROCm,
  which jax.default_backend() also calls "gpu") and a 16-bit float dtype."""
  if jnp.dtype(dtype) not in (jnp.bfloat16, jnp.float16):
    return False
  device = jax.devices()[0]
  return device.platform == "gpu" and "cuda" in device.client.platform_version.lower()


def dot_product_attention(q: jax.Array, k: jax.Array, v: jax.Array, kind: str = "auto",
                          kv_lengths: jax.Array | None = None) -> jax.Array:
  """q: (N, T, H, D), k and v: (N, S, H, D) -> (N, T, H, D). With kv_lengths (N,), only each
  example's first kv_lengths keys are attended to (tokens that do not exist: a table's missing
  entries).

  kind: "xla" = jax.nn.dot_product_attention; "chunked" = chunked_attention; "cudnn" = cuDNN's
  fused kernel (NVIDIA GPUs, bfloat16/float16 only); "auto" = chunked on the CPU backend, cuDNN
  on GPUs for 16-bit inputs, XLA's op otherwise.
  """
  if kind == "auto":
    kind = auto_kind(q.dtype)
  if kind == "chunked":
    return chunked_attention(q, k, v, kv_lengths=kv_lengths)
  if kind == "cudnn":
    return cudnn_attention(q, k, v, kv_lengths=kv_lengths)
  if kind == "xla":
    return jax.nn.dot_product_attention(q, k, v, implementation=kind,
                                        key_value_seq_lengths=kv_lengths)
  raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {kind!r}")
