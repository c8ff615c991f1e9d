"""models/matmul.py: the CPU matmul's custom weight gradient equals the plain matmul's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mae_jax.models import matmul


@pytest.mark.parametrize("shape", [(2, 7, 5, 12), (2, 7, 12, 5), (9, 4, 4)])
def test_cpu_matmul_values_and_gradients(shape):
  # (N, T, K, N_out): wider and narrower outputs than inputs; 2-D input too.
  *lead, k, n = shape
  kx, kw, kc = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, (*lead, k))
  w = jax.random.normal(kw, (k, n))
  ct = jax.random.normal(kc, (*lead, n))      # a cotangent that is not all ones
  loss = lambda f: lambda x, w: jnp.sum(f(x, w) * ct)  # noqa: E731
  np.testing.assert_allclose(matmul.cpu_matmul(x, w), x @ w, rtol=1e-6, atol=1e-6)
  got = jax.jit(jax.grad(loss(matmul.cpu_matmul), (0, 1)))(x, w)
  want = jax.grad(loss(jnp.matmul), (0, 1))(x, w)
  for g, r in zip(got, want):
    assert g.shape == r.shape
    np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5)
  # The weight gradient's dot takes a copy of x^T kept by one barrier.
  jaxpr = str(jax.make_jaxpr(jax.grad(loss(matmul.cpu_matmul), (0, 1)))(x, w))
  assert jaxpr.count("optimization_barrier") == 1


def test_cpu_matmul_bfloat16_gradient_dtypes():
  x = jnp.ones((3, 4, 8), jnp.bfloat16)
  w = jnp.ones((8, 16), jnp.bfloat16)
  gx, gw = jax.grad(lambda x, w: matmul.cpu_matmul(x, w).astype(jnp.float32).sum(), (0, 1))(x, w)
  assert gx.dtype == gw.dtype == jnp.bfloat16
  np.testing.assert_array_equal(gw.astype(jnp.float32), 12.0)   # 3 * 4 tokens of ones


def test_dot_general_takes_the_dense_contraction_only():
  x, w = jnp.ones((2, 3, 4)), jnp.ones((4, 5))
  dense = (((2,), (0,)), ((), ()))
  np.testing.assert_array_equal(matmul.dot_general(x, w, dense), jax.lax.dot_general(x, w, dense))
  # Anything else (here a contraction of x's first axis) goes to lax.dot_general unchanged.
  other = (((0,), (0,)), ((), ()))
  y = jnp.arange(10.0).reshape(2, 5)
  np.testing.assert_array_equal(matmul.dot_general(x, y, other), jax.lax.dot_general(x, y, other))
  # Tests run on the CPU backend: the gradient takes the custom path (its barrier-held copy).
  jaxpr = str(jax.make_jaxpr(jax.grad(lambda w: matmul.dot_general(x, w, dense).sum()))(w))
  assert "optimization_barrier" in jaxpr
