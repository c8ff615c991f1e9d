"""Label efficiency of segmentation: the segment stage and its random-init twin with 50, 200
and 1,000 labelled images (config.data.labels), pretraining on every training image.

  mae-jax --config=digits_seg:study --config.stages=pretrain --config.baselines= --workdir=DIR/mae
  mae-jax-sweep --config=digits_seg:study --sweep=seg_labels --seeds=0,1,2 --workdir=DIR/sweep \
      --config.stages=segment --config.segment.init_from=DIR/mae/pretrain/export

Each point trains the segmenter from the given export and from random init on the same labelled
images in the same order with the same head init (the seed picks the images too), each at the
base_lr its own search chose; sweep.md gives both mIoUs and their paired difference.
"""

from mae_jax import sweep_lib


def get_sweep(config):
  del config
  return sweep_lib.Sweep(axes=[
      sweep_lib.axis("labels", "data.labels", [50, 200, 1000]),
  ])
