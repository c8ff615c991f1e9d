"""BTCV (Beyond the Cranial Vault): 13 abdominal organs in 30 labelled CT volumes and 20
unlabelled ones, in MONAI's layout (imagesTr/, labelsTr/, imagesTs/, dataset_0.json with its
"training" / "validation" / "test" lists).

  mae-jax --config=configs/btcv.py --config.data.dataset=btcv:/path/to/BTCV --workdir=DIR

SelfMedMAE's recipe: CT resampled to 1.5 x 1.5 x 2 mm, HU clipped to [-175, 250] and scaled to
[0, 1], cropped to the body; a ViT-B/16 MAE pretrained on random 96^3 crops of the scans, the
unlabelled ones included as the TinyImageNet study did (config.data.pretrain_splits: the 24
training and 20 test scans; never the 6 scored ones), then MONAI's UNETR (feature size 16,
instance norm, skips from blocks 3/6/9/12) trained on 96^3 crops of the labelled training
volumes balanced on labelled voxels with DiceCE loss, scored by Dice on the validation volumes
through sliding windows (overlap 0.5, Gaussian blending), at the label files' own grid.
Expected (the TinyImageNet study's volume extension): mean Dice 0.7712 from the MAE against
0.7548 from random init (segment3d_random_init); results.md prints them beside this run's.
A folder without imagesTs/ is an error naming the missing scan: pretrain on the training scans
alone with `--config.data.pretrain_splits=training`.
`:smoke` shrinks the model, crops and steps to a CPU minute (any BTCV-layout folder).
"""

from mae_jax import config_lib


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False)
  c = config_lib.base_config("volumes")
  c.stages = "pretrain,segment3d"
  c.baselines = "segment3d_random_init"
  c.model.variant = "B/16"
  c.model.dtype = "bfloat16"
  c.model.decoder_width, c.model.decoder_depth, c.model.decoder_heads = 384, 8, 12
  c.data.update(dataset="btcv:/path/to/BTCV", num_classes=14, spacing=(1.5, 1.5, 2.0),
                intensity="window", intensity_range=(-175.0, 250.0), roi_size=(96, 96, 96),
                crops_per_volume=4, pos_neg=(1.0, 1.0), eval_batch_size=4,
                # The study pretrains on every scan but the scored ones: "test" is unlabelled.
                pretrain_splits=("training", "test"))
  # SelfMedMAE (mae3d_btcv_1gpu): 6 volumes per step, 100 warmup epochs of 10000; crops of 96^3.
  c.pretrain.update(batch_size=24, num_epochs=10000, warmup_epochs=100, base_lr=1.5e-4,
                    eval_every_epochs=500, checkpoint_every_steps=2000)
  # MONAI's BTCV UNETR: 4 crops per step, AdamW lr 1e-4, weight decay 1e-5, 25k iterations.
  c.segment3d.update(batch_size=4, num_epochs=0, num_steps=25000, base_lr=6.4e-3,
                     weight_decay=1e-5, feature_size=16, feature_blocks=(3, 6, 9, 12),
                     overlap=0.5, blend="gaussian", eval_every_epochs=500,
                     checkpoint_every_steps=2000)
  if arg.smoke:
    config_lib.smoke(c, image_size=32, patch_size=4)
    c.data.update(spacing=(4.0, 4.0, 4.0), roi_size=(16, 16, 16), eval_batch_size=4)
    c.segment3d.update(batch_size=4, feature_size=4, feature_blocks=(1, 2))
  return c
