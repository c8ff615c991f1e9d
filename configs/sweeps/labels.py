"""Label efficiency: the labelled stages and their random-init twins with 1%, 10% and 100% of
the training labels (config.data.labels), pretraining on every training example.

  mae-jax --config=fashion_mnist:study --config.stages=pretrain --workdir=DIR/mae
  mae-jax-sweep --config=fashion_mnist:study --sweep=labels --seeds=0,1,2 --workdir=DIR/sweep \
      --config.finetune.init_from=DIR/mae/pretrain/export

Each point runs the config's fine-tune (and linear probe, where config.stages has it) from the
given export and from random init on the same labelled subset, in the same order, with the same
head init (the seed decides the subset too); sweep.md gives both and their paired difference.
"""

from mae_jax import sweep_lib


def get_sweep(config):
  del config
  return sweep_lib.Sweep(axes=[
      sweep_lib.axis("labels", "data.labels", [0.01, 0.1, 1.0]),
  ])
