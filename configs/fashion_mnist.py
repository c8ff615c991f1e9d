"""Fashion-MNIST: MAE on 70,000 real 28x28 clothing images, 10 classes, offline.

  apt-get install dataset-fashion-mnist      # or have TFDS's fashion_mnist prepared
  mae-jax --config=configs/fashion_mnist.py --workdir=/tmp/mae_fashion_mnist

Reads TFDS's fashion_mnist where it is prepared, else Debian's files in
/usr/share/datasets/fashion-mnist; `--config.data.dataset=fashion_mnist:/path` reads the four
IDX files from a folder (docs/datasets.md). Train 60,000 / test 10,000, grey served as RGB at
its native 28 px: a 4-block, 128-wide ViT with 4x4 patches (49 tokens, 12 visible at mask
0.75). Pretrain -> linear probe -> fine-tune, plus three baselines: the same probe and the
same fine-tune from random init, and raw-pixel logistic regression. The whole run took 16
minutes on 2 CPU cores (seed 0, Debian's files): linear probe 67.4% top-1 (random init 62.1%),
fine-tune 68.6% (random init 56.5%), raw pixels 84.3%. At a budget this small pretraining
beats random init but not logistic regression on the pixels; longer runs: raise num_steps.
`:smoke` runs every stage for a few steps (~1.5 minutes; tests give it a generated IDX folder).

`:study` is the label-efficiency study (docs/label_efficiency.md): a longer pretraining, then
the probe and the fine-tune against their random-init twins, each arm at its own base_lr chosen
on a held-out tenth of its labelled examples; swept over config.data.labels by
configs/sweeps/labels.py.
"""

from mae_jax import config_lib


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False, study=False)
  c = config_lib.base_config("images")
  c.baselines = "linprobe_random_init,finetune_random_init,raw_pixels"
  c.model.variant = "mini/4"
  c.model.decoder_width, c.model.decoder_depth, c.model.decoder_heads = 128, 2, 4
  c.data.dataset = "fashion_mnist"
  c.data.image_size = 28
  # Mean and std over every pixel of the 60,000 training images (grey: the same in each channel).
  c.data.mean, c.data.std = (0.2860,) * 3, (0.3530,) * 3
  c.data.eval_crop_ratio = 1.0      # the garment fills the frame; cropping would cut it
  for stage in config_lib.stage_sections(c):
    c[stage].hflip = True           # a mirrored shirt is still a shirt (unlike a digit)
    c[stage].checkpoint_every_steps = 200
    c[stage].log_every_steps = 50

  # Steps, not epochs: an epoch of 60,000 images is 234 steps at batch 256, and the whole run
  # (stages and baselines) is sized for a couple of CPU cores. Warmup counts whole epochs, so
  # pretraining warms up for its first 234 steps and the short probe and fine-tune not at all.
  c.pretrain.update(batch_size=256, num_steps=280, base_lr=1.5e-3, warmup_epochs=1,
                    crop_scale=(0.5, 1.0))
  # LARS: configs/digits.py says why the trust coefficient is 50x the official one.
  c.linprobe.update(batch_size=256, num_steps=100, base_lr=1.0, trust_coefficient=0.05,
                    warmup_epochs=0, crop_scale=(0.8, 1.0))
  # Crop and flip only: RandAugment, erasing and mixing would need far more than these steps.
  c.finetune.update(batch_size=128, num_steps=120, base_lr=2e-3, warmup_epochs=0,
                    layer_decay=0.75, drop_path=0.1, crop_scale=(0.7, 1.0),
                    rand_augment_layers=0, color_jitter=0.0, random_erase_prob=0.0,
                    mixup_alpha=0.0, cutmix_alpha=0.0)
  # L-BFGS on 60,000 x 2,352 pixels took 7.5 minutes for its default 1,000 iterations on 2
  # cores (83.6% top-1); 100 took under one and score 84.3%.
  c.raw_pixels.max_iter = 100
  if arg.study:
    c.stages = "linprobe,finetune"
    c.baselines = "linprobe_random_init,finetune_random_init"
    # 12.8 epochs, ~35 minutes on 2 CPU cores. At 1,500 steps (6.4 epochs) the 1% fine-tune
    # gap was +4.2 points, at 3,000 +5.8 (docs/label_efficiency.md).
    c.pretrain.update(num_steps=3000, eval_every_epochs=4)
    c.linprobe.update(num_steps=200, lr_grid=(0.3, 1.0, 3.0), lr_search_steps=70,
                      eval_every_epochs=1000)
    # Steps, not epochs, so that every label count gets the same budget (600 labels: 64 epochs;
    # 6,000: 6.4; 60,000: 0.64). Warmup is in epochs, which differ: none.
    # 1e-3 to 1.6e-2: with 600 labels the random-init arm's best lies inside (8e-3 at two seeds
    # of three), the MAE arm's reaches 1.6e-2 (docs/label_efficiency.md); 5e-4 was never picked.
    c.finetune.update(num_steps=300, lr_grid=(1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2),
                      lr_search_steps=100, eval_every_epochs=1000)
  if arg.smoke:
    config_lib.smoke(c, image_size=28, patch_size=4)
  return c
