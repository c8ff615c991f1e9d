"""Input data, a module per kind of source, all behind one protocol (`base.DataSource`):

  * images: `sources` (digits, image folders, TFDS incl. `tiny_imagenet`) and their tf.data
    pipelines (`pipeline`, with `decoding`, `augment`, `randaugment`, `resize`);
  * segmentation: `seg_sources`, `seg_pipeline`; series: `series`; tables: `tables`;
    volumes: `volumes`.

Importing this package imports no TensorFlow: the series, table and volume modules run
without it. The image and segmentation modules import TF through `tfsetup`, which keeps it off
GPUs/TPUs, and register mae_jax's TFDS builders when a TFDS dataset can be loaded (`tfds_prep`).
"""
