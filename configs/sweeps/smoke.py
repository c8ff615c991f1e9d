"""Two points, mask sampling random vs grid, of a smoke config: the sweep runner end to end.

  mae-jax-sweep --config=digits:smoke --sweep=smoke --workdir=/tmp/sweep_smoke
"""

from mae_jax import sweep_lib


def get_sweep(config):
  del config  # the same two points whatever the config
  return sweep_lib.Sweep(
      axes=[sweep_lib.axis("mask_sampling", "model.mask_sampling", ["random", "grid"])],
      common={"baselines": ""})
