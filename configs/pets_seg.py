"""Oxford-IIIT Pets segmentation: the trimaps of TFDS oxford_iiit_pet as pet vs background
(the uncertain border ignored; data/seg_sources.py), ViT-B/16 + feature pyramid + UPerNet.

  mae-jax-convert --input mae_pretrain_vit_base.pth --output /data/mae_b16
  mae-jax --config=configs/pets_seg.py:init=/data/mae_b16 --workdir=/data/pets_seg_b16

Without init= the MAE is pretrained on the Pets images first (configs/pets.py's recipe). The
segment stage follows the ADE20K recipe (configs/ade20k.py) at 224 px: crops of images resized
to (896, 224) x [0.5, 2.0], batch 16, 20k iterations, sliding-window evaluation at stride 149,
and the same segmenter from random init beside it. `:smoke` shrinks it to a CPU minute.
"""

from mae_jax import config_lib


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False, init="")
  c = config_lib.base_config("segmentation")
  c.stages = "segment" if arg.init else "pretrain,segment"
  c.baselines = "segment_random_init"
  c.model.variant = "B/16"
  c.model.dtype = "bfloat16"
  c.data.dataset = "oxford_iiit_pet_masks"
  c.data.image_size = 224
  c.data.eval_batch_size = 32
  c.pretrain.update(batch_size=256, num_epochs=800, warmup_epochs=40)
  c.segment.update(num_steps=20000, crop_size=224, scale=(896, 224), eval_mode="slide",
                   eval_size=224, eval_stride=149, eval_scale=(896, 224), init_from=arg.init)
  if arg.smoke:
    config_lib.smoke(c, image_size=32, patch_size=16)
  return c
