"""Cross-subject brain segmentation offline: AAL lobes learnt on one brain, scored on another
(`apt-get install mricron-data` for Colin27 and AAL; `pip install '.[volumes]'` for nibabel and
nilearn's MNI152 template).

  mae-jax --config=configs/colin27.py --workdir=/tmp/mae_colin27

Trains on Colin27 (mricron-data's brain-extracted ch2bet, 1 mm) with the AAL atlas's 116 regions
grouped into 8 lobes by AAL's own codes (frontal, insula, limbic, occipital, parietal, deep grey
nuclei, temporal, cerebellum; data/colin27.py), and scores Dice on the MNI152 2009 template with
the same atlas: both brains lie in MNI space. The MAE pretrains on every T1 there is, unlabelled:
Colin27 three ways (with scalp, brain-extracted, 0.5 mm), the INIA19 macaque template and the
MNI152 image (config.data.pretrain_splits; `=training,unlabelled` keeps the scored brain out).
Resampled to 2 mm, z-scored over the brain, 32^3 crops (8^3 patches); segment3d (UNETR) from the
MAE, from random init, and the field's U-Net (segment3d_unet, MONAI's BasicUNet shape at
`unet_width` 16: half MONAI's widths for a CPU, 1.44 M parameters beside the UNETR's 1.08 M;
`:unet_width=32` is MONAI's default (32, 32, 64, 128, 256, 32)), each 400 steps of 4 crops.
Measured (docs/results/volumes.md, 3 seeds, about an hour a seed on a 2-core VM): mean Dice over
the 8 lobes on MNI152 0.174 ± 0.050 (UNETR from the MAE), 0.235 ± 0.068 (from random init),
0.406 ± 0.020 (U-Net). `:smoke` shrinks it to a few CPU minutes (tests/test_colin27.py).
"""

from mae_jax import config_lib


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False, unet_width=16)
  c = config_lib.base_config("volumes")
  c.stages = "pretrain,segment3d"
  c.baselines = "segment3d_random_init,segment3d_unet"
  c.model.variant = "mini/8"           # 32^3 crops of 8^3 patches: 64 tokens
  c.model.decoder_width, c.model.decoder_depth, c.model.decoder_heads = 64, 2, 4
  c.data.update(dataset="colin27", num_classes=0, spacing=(2.0, 2.0, 2.0), intensity="zscore",
                roi_size=(32, 32, 32), crops_per_volume=4, pos_neg=(1.0, 1.0), eval_batch_size=8,
                # Every T1: the labelled brain, the scored brain's image, the unlabelled ones.
                pretrain_splits=("training", "validation", "unlabelled"))
  for stage in config_lib.stage_sections(c):
    c[stage].checkpoint_every_steps = 200
    c[stage].log_every_steps = 25
  c.pretrain.update(batch_size=8, num_epochs=0, num_steps=1500, base_lr=4.8e-2,  # lr 1.5e-3
                    warmup_epochs=100, eval_every_epochs=500)
  w = arg.unet_width
  # One labelled volume: an epoch is one step of 4 crops.
  c.segment3d.update(batch_size=4, num_steps=400, base_lr=6.4e-2, warmup_epochs=20,  # lr 1e-3
                     feature_size=8, feature_blocks=(2, 3, 4), eval_every_epochs=200,
                     slice_images=1, unet_features=(w, w, 2 * w, 4 * w, 8 * w, w))
  if arg.smoke:
    config_lib.smoke(c, image_size=32, patch_size=4)
    c.data.update(spacing=(4.0, 4.0, 4.0), roi_size=(16, 16, 16), eval_batch_size=4)
    c.segment3d.update(batch_size=4, feature_size=4, feature_blocks=(1, 2),
                       unet_features=(4, 4, 8, 8, 8, 4))
  return c
