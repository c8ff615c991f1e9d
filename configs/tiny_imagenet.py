"""TinyImageNet (64 px, 200 classes, 100,000 train / 10,000 validation).

  mae-jax --config=configs/tiny_imagenet.py --workdir=gs://BUCKET/mae_tin

The TinyImageNet MAE study's setting: 8x8 patches on 64 px images (64 tokens), and the same
fine-tune from random init ("ViT from scratch", finetune_random_init) as a baseline.
Expected (the study's headline): MAE then fine-tune 45.6% top-1 against 37.7% from scratch, on
the validation split; results.md prints them beside this run's.
Evaluation sees each validation image as the study did: one 64x64 view, the whole image
(eval_crop_ratio=1.0). `--config.data.eval_crop_ratio=0.875` gives ImageNet's resize-then-crop
instead (shorter side to 73 px, central 64x64 crop), which drops the image's border.
The TFDS builder `tiny_imagenet` (mae_jax/data/tiny_imagenet.py) downloads and prepares it
on first use.
Args: `size=S` (default B; Ti, S, L too); `smoke` for a ~1 minute CPU run.
"""

from mae_jax import config_lib


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, size="B", smoke=False)
  c = config_lib.base_config("images")
  c.baselines = "finetune_random_init"
  c.model.variant = f"{arg.size}/8"
  c.model.dtype = "bfloat16"
  c.data.dataset = "tiny_imagenet"
  c.data.image_size = 64
  # The study's single view: the 64 px image as it is (a resize to 64 px is the identity).
  c.data.eval_crop_ratio = 1.0
  c.pretrain.update(batch_size=1024, num_epochs=200, warmup_epochs=10)
  c.linprobe.update(batch_size=1024, num_epochs=50, warmup_epochs=5)
  c.finetune.update(batch_size=512, num_epochs=100, warmup_epochs=5)
  if arg.smoke:
    config_lib.smoke(c, image_size=16, patch_size=8)
  return c
