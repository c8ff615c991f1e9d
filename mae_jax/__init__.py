"""mae_jax: Masked Autoencoders (He et al., CVPR 2022) in JAX/Flax.

The model, the training steps and the benchmarks import without TensorFlow;
only `mae_jax.data` (the tf.data input pipeline) imports it.
"""

__version__ = "0.1.0"
