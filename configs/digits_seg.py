"""Offline segmentation quickstart: digits pasted on 64x64 canvases, every stroke pixel labelled
with its digit (11 classes with the background; data/seg_sources.py).

  mae-jax --config=configs/digits_seg.py --workdir=/tmp/mae_digits_seg

Pretrain an MAE on the canvases, then the segment stage (ViT + feature pyramid + UPerNet, the
ADE20K recipe shrunk), and the same segmenter from random init. summary.json: mIoU and pixel
accuracy; segment/predictions/: a label PNG per test canvas; segment/overlays.png.
`:smoke` runs every stage for a few steps.
"""

from mae_jax import config_lib


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False)
  c = config_lib.base_config("segmentation")
  c.stages = "pretrain,segment"
  c.baselines = "segment_random_init"
  c.model.variant = "mini/8"           # 8x8 patches of a 64 px canvas: 64 tokens
  c.model.decoder_width, c.model.decoder_depth, c.model.decoder_heads = 128, 2, 4
  c.data.dataset = "digits_seg"
  c.data.image_size = 64
  c.data.mean, c.data.std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
  c.data.eval_crop_ratio = 1.0
  c.data.eval_batch_size = 100
  for stage in config_lib.stage_sections(c):
    c[stage].hflip = False              # a mirrored digit is another symbol (or none)
    c[stage].checkpoint_every_steps = 200
    c[stage].log_every_steps = 50
  c.pretrain.update(batch_size=64, num_epochs=40, base_lr=6e-3, warmup_epochs=4,
                    crop_scale=(0.5, 1.0))
  c.segment.update(batch_size=32, num_steps=0, num_epochs=25, base_lr=1.6e-2, warmup_epochs=2,
                   layer_decay=0.75, feature_blocks=(1, 2, 3, 4), channels=64,
                   neck_channels=64, aux_channels=32, crop_size=64, eval_size=64,
                   scale=(128, 64), ratio_range=(0.75, 1.5), eval_every_epochs=5)
  if arg.smoke:
    config_lib.smoke(c, image_size=64, patch_size=8)
  return c
