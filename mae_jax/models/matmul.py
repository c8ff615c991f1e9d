"""The Dense layers' matmul, with a weight gradient that XLA's CPU backend runs on YNNPACK.

Why: a Dense layer's weight gradient x^T @ dy contracts over the leading (token) axis of
both operands. XLA:CPU hands a dot to YNNPACK, its fast GEMM, only if the left operand is
row-major in the contraction (a transposed right operand is fine, as in dx = dy @ w^T); for
x^T @ dy it instead transposes the activation gradient dy (the larger operand in the MLP's
fc1) into a copy and runs Eigen's slower GEMM. Here the backward pass makes a transposed
copy of x itself, behind an optimization barrier so that XLA keeps that copy, and the
row-major dot goes to YNNPACK. Measured on a 2-core CPU, B/16 @224 batch 8 pretrain step,
paired rounds taking turns: 2-5% less time per step; 7% together with whole-batch attention
(models/attention.py).

Why x^T and never dy^T (then the (N, K) result back), even where dy is the smaller
operand (the decoder's fc2: M=1576, K=2048, N=512): XLA fuses the result's transpose into
each of the optimizer's elementwise updates that read the gradient, as strided reads, and
those cost more than the larger copy. Single-core profiles of the B/16 step: the decoder
fc2 kernels' updates took 170-270 ms per step that way; with x^T they take 29 ms, and the
copies of x^T 57 ms.

Other backends get the plain dot: GPUs and TPUs take transposed operands for free, and the
forced copy would only cost memory traffic there. Both forms give the same values up to
float rounding (tests/test_matmul.py).
"""

from typing import Any

import jax

_barrier = jax.lax.optimization_barrier


def _weight_grad(x: jax.Array, dy: jax.Array) -> jax.Array:
  """x (M, K), dy (M, N) -> x^T dy (K, N) as one row-major dot on a transposed copy of x."""
  return _barrier(x.T) @ dy


@jax.custom_vjp
def cpu_matmul(x: jax.Array, w: jax.Array) -> jax.Array:
  """x (..., K) @ w (K, N) -> (..., N); its weight gradient goes to YNNPACK on XLA:CPU."""
  return x @ w


def _cpu_matmul_fwd(x: jax.Array, w: jax.Array) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
  return x @ w, (x, w)


def _cpu_matmul_bwd(res: tuple[jax.Array, jax.Array], dy: jax.Array
                    ) -> tuple[jax.Array, jax.Array]:
  x, w = res
  k, n = w.shape
  return dy @ w.T, _weight_grad(x.reshape(-1, k), dy.reshape(-1, n)).astype(w.dtype)


cpu_matmul.defvjp(_cpu_matmul_fwd, _cpu_matmul_bwd)


def matmul(x: jax.Array, w: jax.Array) -> jax.Array:
  """x (..., K) @ w (K, N) -> (..., N): `cpu_matmul` on the CPU backend, else the plain dot."""
  if jax.default_backend() == "cpu":
    return cpu_matmul(x, w)
  return x @ w


def dot_general(lhs: jax.Array, rhs: jax.Array, dimension_numbers: Any, precision: Any = None,
                preferred_element_type: Any = None) -> jax.Array:
  """Drop-in `nn.Dense(dot_general=...)`: `matmul` for a Dense layer's own contraction (last
  axis of the input with the kernel's first) at default precision; lax.dot_general else."""
  dense = (((lhs.ndim - 1,), (0,)), ((), ()))
  if (tuple(map(tuple, dimension_numbers[0])), tuple(map(tuple, dimension_numbers[1]))) == dense \
      and rhs.ndim == 2 and precision is None and preferred_element_type is None:
    return matmul(lhs, rhs)
  return jax.lax.dot_general(lhs, rhs, dimension_numbers, precision=precision,
                             preferred_element_type=preferred_element_type)

