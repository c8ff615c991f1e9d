"""Oxford-IIIT Pets (TFDS oxford_iiit_pet: 3,680 train / 3,669 test, 37 classes).

  mae-jax --config=configs/pets.py --workdir=gs://BUCKET/mae_pets

The Oxford Pets MAE study's protocol: ViT-B/16 at 224 px, mask 0.75, decoder 512x8,
norm_pix_loss; bf16 compute (set --config.model.dtype=float32 on CPU).
Args: `size=L` for ViT-L/16; `smoke` for a ~1 minute CPU run (tests use TFDS mock data).

From the official ImageNet-pretrained weights (the study's setting): convert them once, then
skip pretraining and linear-probe + fine-tune from them (docs/weights.md).

  mae-jax-convert --input mae_pretrain_vit_base.pth --output /tmp/mae_b16
  mae-jax --config=configs/pets.py:init=/tmp/mae_b16 --workdir=/tmp/pets_b16

Expected (the study, ViT-B/16): 84.86% fine-tune, 75.63% linear probe top-1.
"""

from mae_jax import config_lib


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, size="B", smoke=False, init="")
  c = config_lib.base_config("images")
  c.model.variant = f"{arg.size}/16"
  c.model.dtype = "bfloat16"
  c.data.dataset = "oxford_iiit_pet"
  c.data.image_size = 224
  c.pretrain.update(batch_size=256, num_epochs=800, warmup_epochs=40)
  c.linprobe.update(batch_size=512, num_epochs=90, warmup_epochs=10, eval_every_epochs=10)
  c.finetune.update(batch_size=256, num_epochs=100, warmup_epochs=5, eval_every_epochs=10)
  if arg.size == "L":
    c.finetune.update(layer_decay=0.75, drop_path=0.2)
  if arg.init:
    # An export of official weights (mae_jax.convert): no pretraining of our own.
    c.stages = "linprobe,finetune"
    c.linprobe.init_from = c.finetune.init_from = arg.init
  if arg.smoke:
    config_lib.smoke(c, image_size=32, patch_size=16)
  return c
