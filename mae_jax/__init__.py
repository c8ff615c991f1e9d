"""mae_jax: Masked Autoencoders (He et al., CVPR 2022) in JAX/Flax.

The model, the training steps, the series, table and volume readers and the benchmarks import
without TensorFlow; only the image pipeline under `mae_jax.data` (tf.data) imports it.
"""

__version__ = "0.1.0"
