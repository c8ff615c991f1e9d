"""ADE20K semantic segmentation with a ViT-B MAE encoder + UPerNet (150 classes).

  mae-jax-convert --input mae_pretrain_vit_base.pth --output /data/mae_b16
  mae-jax --config=configs/ade20k.py:init=/data/mae_b16 \\
      --config.data.dataset=ade20k:/data/ADEChallengeData2016 --workdir=/data/ade20k_b16

The MAE paper's protocol, mmsegmentation's upernet_mae-base config: 512 x 512 crops, batch 16,
160k iterations, AdamW lr 1e-4 (base_lr 1.6e-3 at batch 256), layer decay 0.65, drop path 0.1,
linear warmup 1500 iterations then poly decay, UPerNet 768 wide, auxiliary FCN (weight 0.4),
sliding-window evaluation (512 windows, stride 341) on images resized to (2048, 512). Expected:
48.1 mIoU (mmsegmentation's metafile: 48.13 single scale). Differences: mmsegmentation's MAE
backbone has layer-scale parameters (initialised to 1) and taps blocks 4, 6, 8, 12
(`--config.segment.feature_blocks="(4,6,8,12)"`); here the study's 3, 6, 9, 12 are the default.

`init=EXPORT` starts from a converted or exported encoder (docs/weights.md); without it the
config pretrains on ADE20K's images first. `:study` is the TinyImageNet study's variant: 256 x 256 crops and windows, and the
segment_random_init baseline. `:smoke` shrinks everything to a CPU minute (tests use generated
files in the ADE20K layout).
"""

from mae_jax import config_lib


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False, study=False, init="")
  c = config_lib.base_config("segmentation")
  # Without init=: pretrain an MAE on ADE20K's own images first (not the paper's protocol,
  # which starts from ImageNet weights: pass init=EXPORT for that).
  c.stages = "segment" if arg.init else "pretrain,segment"
  c.model.variant = "B/16"
  c.model.dtype = "bfloat16"
  c.data.dataset = "ade20k:/data/ADEChallengeData2016"
  c.data.image_size = 224                  # the pretraining resolution (posembed is sin-cos)
  c.data.eval_batch_size = 16
  c.segment.update(channels=768, eval_mode="slide", eval_size=512, eval_stride=341,
                   init_from=arg.init)
  if arg.study:
    c.segment.update(crop_size=256, scale=(1024, 256), eval_size=256, eval_stride=170,
                     eval_scale=(1024, 256))
    c.baselines = "segment_random_init"
  if arg.smoke:
    config_lib.smoke(c, image_size=32, patch_size=16)
    c.segment.eval_mode = "slide"
  return c
