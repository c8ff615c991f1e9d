"""Real 2-D segmentation offline: brain slices labelled with AAL's 8 lobes, learnt on Colin27's
slices and scored on MNI152's (another brain in the same space).

  apt-get install mricron-data && pip install '.[volumes]'
  python -m mae_jax.data.atlas_slices --out=/tmp/brain_slices      # ~20 s, 71 + 71 slices
  mae-jax --config=configs/brain_slices.py --workdir=/tmp/mae_brain_slices

The slices (data/atlas_slices.py: every 2nd axial slice whose lobes cover 2% of it) are a
`segfolder:` with 9 classes (background + 8 lobes). The MAE pretrains on Colin27's 71 slices,
then the segmenter (ViT + feature pyramid + UPerNet) and its random-init twin learn from the
labels of `data.labels` of them (default 20: few labels, as self-supervision is meant for) and
are scored on every MNI152 slice, each prediction brought back to its annotation's size.
Slices are squashed to 64 x 64 (their 217 x 181 aspect is not kept), as the TinyImageNet study
resized ADE20K. `:study` gives each arm its own base_lr from a held-out slice of its labels;
`configs/sweeps/slice_labels.py` sweeps the label count. `:smoke` runs every stage for a few
steps.
"""

from mae_jax import config_lib


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False, study=False)
  c = config_lib.base_config("segmentation")
  c.stages = "pretrain,segment"
  c.baselines = "segment_random_init"
  c.model.variant = "mini/8"           # 8x8 patches of a 64 px slice: 64 tokens
  c.model.decoder_width, c.model.decoder_depth, c.model.decoder_heads = 128, 2, 4
  c.data.dataset = "segfolder:/tmp/brain_slices"
  c.data.num_classes = 9               # background + AAL's 8 lobes (data/atlas_slices.py)
  c.data.image_size = 64
  c.data.mean, c.data.std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
  c.data.eval_crop_ratio = 1.0
  c.data.eval_batch_size = 64
  c.data.labels = 20
  for stage in config_lib.stage_sections(c):
    c[stage].hflip = False              # left and right lobes share a class, but keep anatomy
    c[stage].checkpoint_every_steps = 200
    c[stage].log_every_steps = 50
  # 71 slices: steps, not epochs. Whole slices, lightly rescaled, are the pretraining views.
  c.pretrain.update(batch_size=32, num_steps=600, base_lr=1.5e-3, warmup_epochs=10,
                    crop_scale=(0.6, 1.0))
  # Every slice squashed to 64 x 64 for training and scoring (one whole view); UPerNet on the
  # x2, x1 and x0.5 levels: the x4 level costs most of a step and 64 px lobes need no more.
  c.segment.update(batch_size=8, num_steps=400, num_epochs=0, base_lr=3.2e-2, warmup_epochs=5,
                   layer_decay=0.75, feature_blocks=(2, 3, 4), rescales=(2.0, 1.0, 0.5),
                   channels=64, neck_channels=64, aux_channels=32, keep_ratio=False,
                   scale=(64, 64), ratio_range=(1.0, 1.0), crop_size=64, eval_mode="whole",
                   eval_size=64, eval_every_epochs=1000)
  if arg.study:
    c.segment.update(lr_grid=(8e-3, 3.2e-2, 1.28e-1), lr_search_steps=150)
  if arg.smoke:
    config_lib.smoke(c, image_size=64, patch_size=8)
    c.data.labels, c.segment.batch_size = 8, 4
  return c
