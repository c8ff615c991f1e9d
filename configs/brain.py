"""Offline 3-D segmentation quickstart on a real volume shipped inside nilearn (no download): the
MNI152 2009 T1 brain template, labelled grey matter / white matter / other from its tissue maps
(`pip install '.[volumes]'`).

  mae-jax --config=configs/brain.py --workdir=/tmp/mae_brain

One brain, so the split is by hemisphere: the left half trains, the right half is scored.
Resampled to 2 mm, intensities 0..255 scaled to [0, 1], cropped to the head; an MAE pretrained
on 32^3 crops (8^3 patches), then the segment3d stage (UNETR) from it and from random init.
summary.json: Dice per tissue and their mean on the right hemisphere; segment3d/predictions/:
the label map as NIfTI; segment3d/slices.png; pretrain/reconstructions.png. `:smoke` shrinks it.
"""

from mae_jax import config_lib


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False)
  c = config_lib.base_config("volumes")
  c.stages = "pretrain,segment3d"
  c.baselines = "segment3d_random_init"
  c.model.variant = "mini/8"           # 32^3 crops of 8^3 patches: 64 tokens
  c.model.decoder_width, c.model.decoder_depth, c.model.decoder_heads = 64, 2, 4
  c.data.update(dataset="mni152", spacing=(2.0, 2.0, 2.0), intensity="window",
                intensity_range=(0.0, 255.0), roi_size=(32, 32, 32), crops_per_volume=4,
                eval_batch_size=8)
  for stage in config_lib.stage_sections(c):
    c[stage].checkpoint_every_steps = 200
    c[stage].log_every_steps = 25
  c.pretrain.update(batch_size=8, num_epochs=0, num_steps=1500, base_lr=4.8e-2,  # lr 1.5e-3
                    warmup_epochs=100, eval_every_epochs=500)
  c.segment3d.update(batch_size=4, num_steps=300, base_lr=6.4e-2, warmup_epochs=10,  # lr 1e-3
                     feature_size=8, feature_blocks=(2, 3, 4), eval_every_epochs=100,
                     slice_images=1)
  if arg.smoke:
    config_lib.smoke(c, image_size=32, patch_size=4)
    c.data.update(spacing=(4.0, 4.0, 4.0), roi_size=(16, 16, 16), eval_batch_size=4)
    c.segment3d.update(batch_size=4, feature_size=4, feature_blocks=(1, 2))
  return c
