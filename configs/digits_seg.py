"""Offline segmentation quickstart: digits pasted on 64x64 canvases, every stroke pixel labelled
with its digit (11 classes with the background; data/seg_sources.py).

  mae-jax --config=configs/digits_seg.py --workdir=/tmp/mae_digits_seg

Few labels, many images, as self-supervision is meant to be used: the MAE pretrains on all
5,000 generated training canvases; the segment stage (ViT + feature pyramid + UPerNet, the
ADE20K recipe shrunk) and the same segmenter from random init see the labels of 1,000 of them
(config.data.labels), the same 1,000 in the same order for both. summary.json: mIoU and pixel
accuracy on the 300 test canvases; segment/predictions/: a label PNG per test canvas;
segment/overlays.png. About 30 minutes on 2 CPU cores (the segment stage's 775 steps of 32
canvases, twice, are most of it).

`:study` is the label-efficiency study (docs/label_efficiency.md): a longer pretraining and each
arm at its own base_lr, chosen on a held-out tenth of its labelled canvases; swept over 50 /
200 / 1,000 labels by configs/sweeps/seg_labels.py. `:smoke` runs every stage for a few steps.
"""

from mae_jax import config_lib


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False, study=False)
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
  c.data.labels = 1000
  for stage in config_lib.stage_sections(c):
    c[stage].hflip = False              # a mirrored digit is another symbol (or none)
    c[stage].checkpoint_every_steps = 200
    c[stage].log_every_steps = 50
  # Steps, not epochs: 5,000 canvases at batch 64 are 78 steps an epoch.
  c.pretrain.update(batch_size=64, num_steps=500, base_lr=1.5e-3, warmup_epochs=1,
                    crop_scale=(0.5, 1.0))
  # mmsegmentation's MAE/UPerNet recipe (lr 1e-4 at batch 16, base_lr 1.6e-3) is for 160,000
  # steps. In a few hundred the randomly initialised UPerNet head labels everything background
  # (mIoU ~9, the loss flat from step 100): at that rate and 10x it with batch 16 (300 steps),
  # and at 10x with batch 32 for 12 epochs (372 steps). 25 epochs at 10x (775 steps) get past it.
  c.segment.update(batch_size=32, num_steps=0, num_epochs=25, base_lr=1.6e-2, warmup_epochs=2,
                   layer_decay=0.75, feature_blocks=(1, 2, 3, 4), channels=64,
                   neck_channels=64, aux_channels=32, crop_size=64, eval_size=64,
                   scale=(128, 64), ratio_range=(0.75, 1.5), eval_every_epochs=1000)
  if arg.study:
    c.pretrain.num_steps = 3000         # 38 epochs of the 5,000 canvases
    # Steps, so that every label count (25 canvases are one batch) gets the same budget.
    c.segment.update(num_steps=775, lr_grid=(4e-3, 1.6e-2, 3.2e-2), lr_search_steps=200)
  if arg.smoke:
    config_lib.smoke(c, image_size=64, patch_size=8)
  return c
