"""models/attention.py: the chunked CPU form and XLA's op give the same numbers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mae_jax.models import MAE, attention, from_variant
from mae_jax.models.vit import gelu


def _qkv(shape, seed=0):
  rng = np.random.default_rng(seed)
  return [jnp.asarray(rng.normal(size=shape).astype(np.float32)) for _ in range(4)]


@pytest.mark.parametrize("chunk_bytes", [attention.CHUNK_BYTES, 3 * 17 * 17 * 4 * 2])
def test_chunked_matches_xla_values_and_gradients(chunk_bytes):
  # 5 examples of 17 tokens, 3 heads: the small chunk (2 examples) leaves a remainder of 1.
  q, k, v, c = _qkv((5, 17, 3, 8))

  def loss(fn):
    return lambda q, k, v: jnp.sum(fn(q, k, v) * c)

  chunked = lambda q, k, v: attention.chunked_attention(q, k, v, chunk_bytes)  # noqa: E731
  ref = loss(jax.nn.dot_product_attention)
  np.testing.assert_allclose(loss(chunked)(q, k, v), ref(q, k, v), rtol=1e-5)
  for got, want in zip(jax.grad(loss(chunked), (0, 1, 2))(q, k, v),
                       jax.grad(ref, (0, 1, 2))(q, k, v)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_softmax_gradient_is_softmax_gradient():
  x = _qkv((4, 9))[0] * 3
  c = _qkv((4, 9), seed=1)[0]
  got = jax.grad(lambda x: jnp.sum(attention.softmax(x) * c))(x)
  want = jax.grad(lambda x: jnp.sum(jax.nn.softmax(x, axis=-1) * c))(x)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_bfloat16_runs_with_float32_softmax():
  q, k, v, _ = (a.astype(jnp.bfloat16) for a in _qkv((2, 5, 2, 4)))
  out = attention.dot_product_attention(q, k, v, "chunked")
  assert out.dtype == jnp.bfloat16
  np.testing.assert_allclose(out.astype(np.float32),
                             jax.nn.dot_product_attention(q, k, v).astype(np.float32), atol=3e-2)


@pytest.mark.parametrize("tokens", [17, 16])
def test_cudnn_form_pads_odd_lengths_and_masks_the_padding(tokens):
  # The padding logic of cudnn_attention, run through XLA's op (same sequence-length masking):
  # values and gradients must equal plain attention over the unpadded tokens.
  q, k, v, c = _qkv((3, tokens, 2, 8))

  def loss(fn):
    return lambda q, k, v: jnp.sum(fn(q, k, v) * c)

  padded = lambda q, k, v: attention.cudnn_attention(q, k, v, implementation="xla")  # noqa: E731
  ref = loss(jax.nn.dot_product_attention)
  assert padded(q, k, v).shape == q.shape
  np.testing.assert_allclose(loss(padded)(q, k, v), ref(q, k, v), rtol=1e-5)
  for got, want in zip(jax.grad(loss(padded), (0, 1, 2))(q, k, v),
                       jax.grad(ref, (0, 1, 2))(q, k, v)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_auto_kind_per_backend():
  # Tests run on CPUs: the chunked form for every dtype.
  assert attention.auto_kind(jnp.float32) == attention.auto_kind(jnp.bfloat16) == "chunked"


def test_unknown_kind_is_an_error():
  q = jnp.zeros((1, 2, 1, 4))
  with pytest.raises(ValueError, match="attention must be one of"):
    attention.dot_product_attention(q, q, q, "flash")


@pytest.mark.slow   # a whole MAE forward and backward per attention kind
def test_mae_loss_and_gradients_agree_across_kinds():
  images = jnp.asarray(np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype(np.float32))
  noise = jnp.asarray(np.random.default_rng(1).uniform(size=(2, 16)).astype(np.float32))
  results = {}
  for kind in ("xla", "chunked"):
    model = from_variant(MAE, "mu/4", decoder_width=32, decoder_depth=1, decoder_heads=2,
                             attention=kind)
    params = model.init(jax.random.key(0), images, noise=noise)["params"]
    results[kind] = jax.value_and_grad(
        lambda p, m=model: m.apply({"params": p}, images, noise=noise)[0])(params)
  (la, ga), (lb, gb) = results["xla"], results["chunked"]
  np.testing.assert_allclose(la, lb, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(ga), jax.tree.leaves(gb)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_gelu_is_the_exact_gelu():
  x = jnp.linspace(-8.0, 8.0, 1001)
  np.testing.assert_allclose(gelu(x), jax.nn.gelu(x, approximate=False), atol=2e-6)
  assert gelu(x.astype(jnp.bfloat16)).dtype == jnp.bfloat16
