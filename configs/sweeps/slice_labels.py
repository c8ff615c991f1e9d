"""Label efficiency on real brain slices: the segment stage and its random-init twin with the
labels of 10, 20 and all of Colin27's slices (config.data.labels), pretraining on every slice.

  python -m mae_jax.data.atlas_slices --out=/tmp/brain_slices
  mae-jax --config=brain_slices:study --config.stages=pretrain --config.baselines= --workdir=DIR/mae
  mae-jax-sweep --config=brain_slices:study --sweep=slice_labels --seeds=0,1,2 --workdir=DIR/sweep \
      --config.stages=segment --config.segment.init_from=DIR/mae/pretrain/export

Both arms see the same labelled slices in the same order with the same head init, each at its
own base_lr; sweep.md gives both mIoUs on the MNI152 slices and their paired difference.
"""

from mae_jax import sweep_lib


def get_sweep(config):
  del config
  return sweep_lib.Sweep(axes=[
      sweep_lib.axis("labels", "data.labels", [10, 20, 1.0]),
  ])
