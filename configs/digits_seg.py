"""Offline segmentation quickstart: digits pasted on 64x64 canvases, every stroke pixel labelled
with its digit (11 classes with the background; data/seg_sources.py).

  mae-jax --config=configs/digits_seg.py --workdir=/tmp/mae_digits_seg

Few labels, many images, as self-supervision is meant to be used: the MAE pretrains on all
5,000 generated training canvases; the segment stage (ViT + feature pyramid + UPerNet, the
ADE20K recipe shrunk) and the same segmenter from random init see the labels of 1,000 of them
(config.data.labels), the same 1,000 in the same order for both. summary.json: mIoU and pixel
accuracy on the 300 test canvases; segment/predictions/: a label PNG per test canvas;
segment/overlays.png. About 10 minutes on 2 CPU cores (500 pretraining steps of 64 canvases,
then 400 segment steps of 16, twice).

`:study` is the label-efficiency study (docs/label_efficiency.md): a longer pretraining and each
arm at its own base_lr, chosen on a held-out tenth of its labelled canvases; swept over 50 /
200 / 1,000 labels by configs/sweeps/seg_labels.py. `--config.segment.head=linear
--config.segment.probe=True` probes the frozen patch tokens with a linear layer instead of
UPerNet (where the MAE's gain shows, docs/label_efficiency.md). `:smoke` runs every stage for a
few steps.
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
  # mmsegmentation's MAE/UPerNet recipe (lr 1e-4 at batch 16) is for 160,000 steps. In a few
  # hundred the randomly initialised head first learns stroke against background and then
  # stays at a uniform guess between the ten digits (decode loss ~0.6) unless the rate is high:
  # peak 1.6e-2 at batch 16 gets past it in ~150 steps (the MAE start first; by step 400 its
  # twin has caught up, docs/label_efficiency.md; at twice the rate they tie). Whole canvases, no rescaling: the digits are the canvas's
  # scale. UPerNet on the x2, x1 and x0.5 levels (strides 4, 8 and 16, mmseg's finest is 4):
  # the x4 level would cost most of a step.
  c.segment.update(batch_size=16, num_steps=400, num_epochs=0, base_lr=2.56e-1,
                   warmup_epochs=2, layer_decay=0.75, feature_blocks=(2, 3, 4),
                   rescales=(2.0, 1.0, 0.5), channels=64, neck_channels=64, aux_channels=32,
                   crop_size=64, eval_size=64, scale=(64, 64), ratio_range=(1.0, 1.0),
                   eval_every_epochs=1000)
  if arg.study:
    c.pretrain.num_steps = 3000         # 38 epochs of the 5,000 canvases
    # Steps, so that every label count (25 canvases are one batch) gets the same budget.
    c.segment.update(num_steps=600, lr_grid=(6.4e-2, 2.56e-1, 5.12e-1), lr_search_steps=200)
  if arg.smoke:
    config_lib.smoke(c, image_size=64, patch_size=8)
  return c
