"""optim.global_norm: the train step's grad_norm metric."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mae_jax import optim


def test_global_norm_equals_optax_in_float32():
  k1, k2 = jax.random.split(jax.random.key(0))
  tree = {"w": jax.random.normal(k1, (3, 5, 7)), "b": [jax.random.normal(k2, (11,)) * 100],
          "s": jnp.asarray(-2.0), "h": jnp.full((4,), 3.0, jnp.bfloat16)}
  got = optim.global_norm(tree)
  assert got.dtype == jnp.float32 and got.shape == ()
  np.testing.assert_allclose(got, optax.tree.norm(tree), rtol=1e-6)
  # bfloat16 leaves are accumulated in float32: sqrt(4 * 9) with no bf16 rounding of the sum.
  np.testing.assert_allclose(optim.global_norm({"h": jnp.full((4,), 3.0, jnp.bfloat16)}), 6.0)
  assert not np.isfinite(optim.global_norm({"w": jnp.asarray([1.0, jnp.nan])}))
