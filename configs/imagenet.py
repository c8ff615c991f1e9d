"""ImageNet-1k (TFDS imagenet2012: 1,281,167 train / 50,000 validation, 1,000 classes), the
official MAE recipe: pretrain 800 epochs (1,600 for the paper's best), then fine-tune and
linear probe.

  mae-jax --config=configs/imagenet.py:size=B --workdir=gs://BUCKET/mae_in1k_b16 \
      --config.data.data_dir=gs://BUCKET/tfds

Expected (official release, 224 px): ViT-B/16 fine-tune 83.6 / linear probe 68.0; ViT-L/16
85.9 / 75.8; ViT-H/14 86.9 / 76.6 (docs/reproducing.md).
TFDS cannot download ImageNet: put ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar in
<data_dir>/downloads/manual/; the first run prepares the dataset as array_record, which
training streams by index (about 150 GB: a split that size never fits a host's memory).
Args: `size=B|L|H`, `epochs=800|1600` (pretraining), `smoke` for a ~1 minute CPU run (tests use
TFDS mock data).
"""

from mae_jax import config_lib
from mae_jax.errors import ConfigError

# FINETUNE.md of the official release, per size: (base lr, layer decay, drop path, epochs).
_FINETUNE = {"B": (5e-4, 0.65, 0.1, 100), "L": (1e-3, 0.75, 0.2, 50), "H": (1e-3, 0.75, 0.3, 50)}


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, size="B", epochs=800, smoke=False)
  if arg.size not in _FINETUNE:
    raise ConfigError(f"configs/imagenet.py: size={arg.size!r}; one of {', '.join(_FINETUNE)}")
  c = config_lib.base_config("images")
  c.model.variant = "H/14" if arg.size == "H" else f"{arg.size}/16"
  c.model.dtype = "bfloat16"
  c.data.dataset = "imagenet2012"
  c.data.image_size = 224
  c.data.tfds_file_format = "array_record"
  c.data.eval_batch_size = 1024
  # base_config holds the official pretraining (batch 4096, blr 1.5e-4, warmup 40, wd 0.05,
  # betas 0.9/0.95, crops 0.2-1, mask 0.75, norm_pix) and linear probe (LARS, batch 16384, blr
  # 0.1, 90 epochs, cls token) recipes.
  c.pretrain.num_epochs = arg.epochs
  c.pretrain.checkpoint_every_steps = 1000
  lr, layer_decay, drop_path, epochs = _FINETUNE[arg.size]
  c.finetune.update(base_lr=lr, layer_decay=layer_decay, drop_path=drop_path, num_epochs=epochs)
  c.visualize.every_steps = 5000
  if arg.smoke:
    config_lib.smoke(c, image_size=16, patch_size=8)
    c.data.tfds_file_format = ""   # TFDS's mock data is written as tfrecord
  return c
