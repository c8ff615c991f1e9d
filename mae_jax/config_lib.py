"""Shared pieces of the experiment configs in configs/.

Each file in configs/ is a flat `get_config(arg)` that starts from `base_config()`
and changes what its study changes; `:smoke` shrinks any of them to a ~1 minute CPU run.
"""

import os

import ml_collections

from mae_jax.errors import ConfigError

# Training stages, each with a config.<stage>.
STAGES = ("pretrain", "linprobe", "finetune", "segment", "forecast", "impute", "segment3d")
# Stages that train nothing; "visualize" runs on the pretrain stage's last checkpoint.
EXTRA_STAGES = ("visualize",)
BASELINES = ("linprobe_random_init", "finetune_random_init", "raw_pixels", "segment_random_init",
             # Series (forecast_task.py): the forecast transformer from random init, the last
             # value, forecasters of other kinds (config.forecast.model), and PatchTST's
             # masking (zeroed patches kept in the sequence) pretrained then forecast.
             "forecast_random_init", "persistence", "linear", "rnn", "lstm", "gru", "patchtst",
             # Tables (impute_baselines.py): imputers on the same rows and removed entries.
             "mean", "mlp", "knn", "mice", "missforest",
             # Volumes (segment3d_task.py): the UNETR from random init.
             "segment3d_random_init")
# Baselines that impute a table without training in the loop (impute_baselines.py).
IMPUTER_BASELINES = ("mean", "mlp", "knn", "mice", "missforest")
# Baselines that are the forecast stage with another config.forecast.model, from random init.
FORECASTER_BASELINES = ("linear", "rnn", "lstm", "gru")
# Datasets with label maps (data/seg_sources.py): names, and prefixes of paths. Here, not there,
# so that checking a config needs no TensorFlow.
SEGMENTATION_DATASETS = ("digits_seg", "oxford_iiit_pet_masks")
SEGMENTATION_PREFIXES = ("ade20k:", "segfolder:")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# Series datasets (data/series.py), likewise.
SERIES_DATASETS = ("vega_temps",)
SERIES_PREFIXES = ("ett:", "csv:")


# Volume datasets (data/volumes.py), likewise: the offline brain, BTCV and Decathlon layouts.
VOLUME_DATASETS = ("mni152",)
VOLUME_PREFIXES = ("btcv:", "msd:")


def is_table(config: ml_collections.ConfigDict) -> bool:
  """Whether the config imputes a table (its stages include impute; data/tables.py): a "csv:"
  file is a table for impute and a series otherwise."""
  return "impute" in [s.strip() for s in config.stages.split(",")]


def modality(config: ml_collections.ConfigDict) -> str:
  """"table", "series", "volume" or "images" (classification or segmentation): what
  config.data holds."""
  if is_table(config):
    return "table"
  if is_volume(config.data.dataset):
    return "volume"
  return "series" if is_series(config.data.dataset) else "images"


def is_volume(dataset: str) -> bool:
  """Whether config.data.dataset names 3-D volumes (the segment3d stage's)."""
  return dataset in VOLUME_DATASETS or dataset.startswith(VOLUME_PREFIXES)


def is_series(dataset: str) -> bool:
  """Whether config.data.dataset names a time series (the forecast stage's)."""
  return dataset in SERIES_DATASETS or dataset.startswith(SERIES_PREFIXES)


def is_segmentation(dataset: str) -> bool:
  """Whether config.data.dataset names a dataset of label maps (the segment stage's)."""
  return dataset in SEGMENTATION_DATASETS or dataset.startswith(SEGMENTATION_PREFIXES)


def shipped_config_dirs() -> list[str]:
  """Where the shipped configs are: inside an installed package (the wheel puts configs/ at
  mae_jax/configs), or beside the package in a checkout."""
  package = os.path.dirname(os.path.abspath(__file__))
  return [os.path.join(package, "configs"), os.path.join(os.path.dirname(package), "configs")]


def shipped_configs(subdir: str = "") -> list[str]:
  """Bare names of the shipped configs ("digits", "pets", ...); of configs/`subdir` if given."""
  found = set()
  for directory in shipped_config_dirs():
    directory = os.path.join(directory, subdir)
    if os.path.isdir(directory):
      found.update(f[:-3] for f in os.listdir(directory)
                   if f.endswith(".py") and not f.startswith("_"))
  return sorted(found)


def resolve_config(spec: str, subdir: str = "") -> str:
  """'digits:smoke' -> '<configs dir>/digits.py:smoke'; a path that exists stays as given.

  A bare name (no directory, ".py" optional) that is not a file in the working directory means
  the shipped config of that name, so `--config=digits:smoke` works from any directory;
  `subdir` looks in configs/<subdir> instead (the sweep files: "sweeps").
  """
  path, sep, arg = spec.partition(":")
  if os.path.isfile(path) or os.sep in path or "/" in path:
    return spec
  name = path if path.endswith(".py") else f"{path}.py"
  for directory in shipped_config_dirs():
    if os.path.isfile(os.path.join(directory, subdir, name)):
      return os.path.join(directory, subdir, name) + sep + arg
  return spec


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
  """'smoke,size=L' -> ConfigDict(smoke=True, size='L'), typed after `defaults`."""
  out = ml_collections.ConfigDict(defaults)
  for item in filter(None, (arg or "").split(",")):
    key, _, value = item.partition("=")
    if key not in defaults:
      raise ConfigError(f"unknown config argument {key!r}; known: {', '.join(defaults)}")
    kind = type(defaults[key])
    if kind is bool:
      out[key] = value.lower() not in ("0", "false", "no") if value else True
    else:
      out[key] = kind(value)
  return out


def _stage(**fields) -> ml_collections.ConfigDict:
  common = dict(
      batch_size=256,             # global batch (all devices); the effective batch for lr scaling
      grad_accum_steps=1,         # micro-batches per step: batch_size / grad_accum_steps per pass
      num_epochs=100,
      num_steps=0,                # > 0 overrides num_epochs
      base_lr=1e-3,               # lr = base_lr * batch_size / 256
      min_lr=0.0,
      lr_schedule="cosine",       # after the linear warmup: "cosine" or "poly" (linear decay)
      warmup_epochs=5,
      weight_decay=0.05,
      crop_scale=(0.08, 1.0),     # RandomResizedCrop area range (bicubic resize)
      crop_ratio=(3 / 4, 4 / 3),  # and aspect-ratio range
      hflip=True,
      # Fine-tune augmentations (mae_jax/data/augment.py), off unless a stage turns them on.
      rand_augment_layers=0,      # RandAugment ops per image; 0 = off
      rand_augment_magnitude=9.0,
      rand_augment_magnitude_std=0.5,
      color_jitter=0.0,           # only applied when RandAugment is off, as in timm
      random_erase_prob=0.0,
      mixup_alpha=0.0,            # Beta(a, a) per batch; 0 = off. Labels become soft.
      cutmix_alpha=0.0,
      mixup_prob=1.0,             # probability that a batch is mixed at all
      mixup_switch_prob=0.5,      # with both on: probability of cutmix instead of mixup
      log_every_steps=50,
      eval_every_epochs=10,       # classifier stages; always evaluated at the end
      checkpoint_every_steps=500,
      keep_checkpoints=2,
      init_from="",               # encoder export to start from; "" = this run's pretrain, "random"
  )
  common.update(fields)
  return ml_collections.ConfigDict(common)


def base_config() -> ml_collections.ConfigDict:
  """Every field the code reads, with the official ImageNet recipe's values where one exists."""
  c = ml_collections.ConfigDict()
  c.stages = "pretrain,linprobe,finetune"   # segment: configs with label maps (digits_seg)
  c.baselines = ""               # comma-separated subset of BASELINES
  c.seed = 0
  c.parallel = "shard_map"       # or "pmap": the same per-device step under jax.pmap

  c.model = ml_collections.ConfigDict(dict(
      variant="B/16",
      mask_ratio=0.75,
      # Which patches go (masking.mask_noise): "random" (MAE), "block" (BEiT's rectangles) or
      # "grid" (one kept per 2x2 cell; mask_ratio 0.75 only).
      mask_sampling="random",
      # The MAE paper's "w/ [M]" ablation: the encoder sees all patches, a learned mask token in
      # place of the removed ones (costs an unmasked encoder's compute). False = MAE.
      encoder_mask_tokens=False,
      # With encoder_mask_tokens: what stands in for a removed patch, a "learned" token, or
      # "zero": its values zeroed before the embedding (PatchTST's masked pretraining).
      mask_value="learned",
      # Series: patches this many steps apart (PatchTST's supervised 16/8); 0 = the patch length.
      patch_stride=0,
      norm_pix_loss=True,
      decoder_width=512,
      decoder_depth=8,
      decoder_heads=16,
      dtype="float32",           # compute dtype; parameters stay float32. "bfloat16" on TPU/GPU.
      # Attention implementation (models/attention.py), same numbers either way: "xla"
      # (jax.nn.dot_product_attention), "chunked" (faster on CPUs), "cudnn" (fused kernel,
      # NVIDIA GPUs, 16-bit dtypes), "auto" (chunked on CPU, cudnn where it applies, else xla).
      attention="auto",
  ))
  c.data = ml_collections.ConfigDict(dict(
      # "digits", "imagefolder:/path" (root/<split>/<class>/<image>), "images:/path" (unlabeled,
      # any depth: pretrain and visualize only), "tfds:NAME" or "NAME".
      # Segmentation (the segment stage): "digits_seg", "ade20k:/path", "segfolder:/path"
      # (data/seg_sources.py); their images also serve pretrain and visualize.
      dataset="oxford_iiit_pet",
      num_classes=0,             # segfolder: datasets: annotation values 1..num_classes
      data_dir="",               # TFDS data dir; "" = TFDS_DATA_DIR or ~/tensorflow_datasets
      # "images:" folders: the held-out share (at most holdout_max images) that the
      # reconstruction grids and the eval reconstruction loss use, not trained on.
      holdout=0.01,
      holdout_max=5000,
      # Training reads a split from host memory ("memory": the split is read once, encoded
      # images stay encoded) or from disk by index ("stream": memory stays a few batches,
      # whatever the split's size; needs a random-access dataset: image folders). "auto"
      # streams a split larger than cache_max_gb.
      cache="auto",
      cache_max_gb=4.0,
      # How a TFDS dataset not prepared yet is written: "" (TFDS's tfrecord: read into memory
      # to train) or "array_record" (random access: can stream).
      tfds_file_format="",
      image_size=224,
      mean=IMAGENET_MEAN,
      std=IMAGENET_STD,
      eval_crop_ratio=0.875,     # eval: resize shorter side to size / ratio, center crop
      eval_batch_size=256,
      # How train/eval batches order an image's axes: "WCH" as the resize leaves it, (W, C, H),
      # transposed to (H, W, C) in the jitted step (the host's CPU per image is the input
      # bottleneck; the accelerator's transpose is fused into the normalisation); "HWC" on the
      # host. Same pixels either way.
      batch_layout="WCH",
      # Series (data/series.py; "ett:/path/ETTh1.csv", "csv:/path", "vega_temps"): windows of
      # `lookback` rows in, the next `horizon` rows out. setting "M": every variable (or
      # `columns`, comma-separated) in and out; "S": `target` only. protocol "informer" (ETT's
      # fixed 12/4/4-month borders), "fractions" (`split`: train, val, test shares), "study".
      lookback=336,
      horizon=96,
      setting="M",
      target="OT",
      protocol="informer",
      split=(0.7, 0.1, 0.2),
      scaling="zscore",           # training rows' mean and std; or "minmax" (to [0, 1])
      date_column="date",
      columns="",                 # series and tables: the columns to use, comma-separated
      # Tables (data/tables.py; "csv:/path", or "diabetes", "breast_cancer", "wine"): entries
      # removed per original column at missing_rate by `mechanism` ("mcar", "mar", "mnar",
      # "mnar_self"); rows already missing a value dropped or kept ("drop" / "keep").
      missing_rate=0.2,
      mechanism="mcar",
      test_fraction=0.2,
      existing_missing="drop",
      categorical="",             # numeric columns to one-hot encode (class codes)
      # Volumes (data/volumes.py; "btcv:/path", "msd:/path", "mni152"): reoriented to RAS,
      # resampled to `spacing` (mm), intensities "window"ed (intensity_range clipped, scaled to
      # [0, 1]) or "zscore"d (per channel, nonzero voxels), cropped to the foreground; the
      # model sees roi_size crops (crops_per_volume per volume and step, half of them centred
      # on a labelled voxel: pos_neg) and whole volumes through sliding windows.
      # num_classes 0 = the JSON's "labels"; msd: holds out val_fraction of the training list.
      spacing=(1.5, 1.5, 2.0),
      intensity="window",
      intensity_range=(-175.0, 250.0),
      roi_size=(96, 96, 96),
      crops_per_volume=4,
      pos_neg=(1.0, 1.0),
      val_fraction=0.2,
      max_cases=0,                # > 0: the first max_cases volumes of each split (smoke runs)
  ))
  # main_pretrain.py: blr 1.5e-4, wd 0.05, betas (0.9, 0.95), 40 warmup epochs, crop 0.2-1.
  c.pretrain = _stage(batch_size=4096, num_epochs=800, base_lr=1.5e-4, warmup_epochs=40,
                      crop_scale=(0.2, 1.0), b1=0.9, b2=0.95)
  # main_linprobe.py: LARS, blr 0.1, no wd, 10 warmup epochs, cls token, head std 0.01.
  # LARS moves a weight matrix by lr * trust_coefficient of its norm per step (biases by
  # lr * gradient): the two knobs set the head's and the bias's step sizes separately.
  c.linprobe = _stage(batch_size=16384, num_epochs=90, base_lr=0.1, weight_decay=0.0,
                      warmup_epochs=10, momentum=0.9, trust_coefficient=0.001,
                      global_pool=False, head_init_std=0.01)
  # main_finetune.py (ViT-B): blr 5e-4, layer decay 0.65, drop path 0.1, smoothing 0.1;
  # RandAugment rand-m9-mstd0.5-inc1, color jitter 0.4 (unused by timm next to RandAugment),
  # random erasing 0.25, mixup 0.8 / cutmix 1.0 per batch.
  c.finetune = _stage(batch_size=1024, num_epochs=100, base_lr=5e-4, warmup_epochs=5,
                      b1=0.9, b2=0.999, layer_decay=0.65, drop_path=0.1, label_smoothing=0.1,
                      global_pool=True, head_init_std=2e-5, grad_clip_norm=0.0,
                      rand_augment_layers=2, color_jitter=0.4, random_erase_prob=0.25,
                      mixup_alpha=0.8, cutmix_alpha=1.0)
  # mmsegmentation's ViT-B + UPerNet on ADE20K (upernet_mae-base, the MAE paper's protocol):
  # batch 16, AdamW lr 1e-4 (base_lr 1.6e-3 at batch 256), layer decay 0.65, drop path 0.1,
  # 160k iterations, linear warmup 1500 iterations then poly decay (power 1), 512 crops.
  c.segment = _stage(batch_size=16, num_epochs=0, num_steps=160000, base_lr=1.6e-3,
                     warmup_epochs=1500 / 1263, lr_schedule="poly", b1=0.9, b2=0.999,
                     weight_decay=0.05, layer_decay=0.65, drop_path=0.1, grad_clip_norm=0.0,
                     feature_blocks=(3, 6, 9, 12),   # the study's; mmsegmentation's: 4, 6, 8, 12
                     neck="feature2pyramid",         # or "simple" (ViTDet, from the last block)
                     neck_channels=256, channels=512, dropout=0.1,
                     aux_channels=256, aux_weight=0.4,   # FCN on the x1 level; 0 = none
                     crop_size=512, scale=(2048, 512), ratio_range=(0.5, 2.0), cat_max_ratio=0.75,
                     photometric=True,
                     # Evaluation: "whole" (each image fitted, longer side, to eval_size) or
                     # "slide" (resized as mmsegmentation's test Resize to eval_scale, then
                     # eval_size windows eval_stride apart; the MAE paper's ADE20K protocol).
                     eval_mode="whole", eval_size=512, eval_stride=341, eval_scale=(2048, 512),
                     overlay_images=8)
  # Forecasting (forecast_task.py): PatchTST's fine-tuning recipe (Adam, lr 1e-4 at batch
  # 128 -> base_lr 2e-4, MSE loss, RevIN, flatten head); every window of eval_split scored.
  c.forecast = _stage(batch_size=128, num_epochs=20, base_lr=2e-4, warmup_epochs=1,
                      weight_decay=0.0, b1=0.9, b2=0.999, grad_clip_norm=0.0,
                      model="transformer",   # or linear, rnn, lstm, gru (models/forecaster.py)
                      probe=False,           # True: frozen encoder, the head alone trains
                      drop_path=0.0, head_dropout=0.0, hidden=64, revin=True,
                      eval_split="test", eval_every_epochs=5, plot_windows=4)
  # Imputation (impute_task.py): ReMasker's recipe, AdamW lr 1e-3 at batch 64 (base_lr 4e-3),
  # 600 epochs on California's ~16k training rows.
  c.impute = _stage(batch_size=64, num_epochs=600, base_lr=4e-3, warmup_epochs=40,
                    weight_decay=0.05, b1=0.9, b2=0.95, eval_every_epochs=100)
  # 3-D segmentation (segment3d_task.py): MONAI's UNETR on BTCV (AdamW lr 1e-4 at 4 crops per
  # step -> base_lr 6.4e-3, weight decay 1e-5, 25k iterations, DiceCE loss), SelfMedMAE's
  # augmentation (flips and rot90 at 0.1, intensity scale/shift by 0.1); sliding-window
  # evaluation of whole volumes (roi windows, overlap 0.5, Gaussian blending).
  c.segment3d = _stage(batch_size=4, num_epochs=0, num_steps=25000, base_lr=6.4e-3,
                       warmup_epochs=0, b1=0.9, b2=0.999, weight_decay=1e-5, layer_decay=1.0,
                       grad_clip_norm=0.0, drop_path=0.0, crop_scale=(1.0, 1.0), hflip=False,
                       feature_size=16,
                       # The ViT blocks the skips come from, the last the bottleneck (the
                       # UNETR paper's z3, z6, z9, z12; MONAI's code taps 4, 7, 10, 12).
                       feature_blocks=(3, 6, 9, 12),
                       flip_prob=0.1, rot90_prob=0.1, intensity_prob=0.1, intensity_factor=0.1,
                       overlap=0.5, blend="gaussian", eval_every_epochs=100, slice_images=4,
                       # How 3^3 convolutions run (models/unetr.py conv_same), the same numbers:
                       # "auto" (2-D slices on CPUs, XLA's 3-D convolution elsewhere).
                       conv="auto")
  # Reconstruction grids (mae_jax/visualize.py): the "visualize" stage, and TensorBoard images
  # of the same eval images during pretraining.
  c.visualize = ml_collections.ConfigDict(dict(
      checkpoint="",             # the stage's MAE (see visualize.py); "" = this run's pretrain
      # .pth / HF files: whether the model predicts norm_pix targets. "" = what the file says
      # (HF config.json; a .pth says nothing: False, as the official mae_visualize weights).
      norm_pix_loss="",          # or "true" / "false"
      num_images=8,              # rows of the grid: the first eval-split images
      mask_ratio=0.0,            # 0 = the model's config.model.mask_ratio
      # samplings.png: the images masked by each of these samplings (those that can mask at the
      # ratio) and their reconstructions; "" = none.
      samplings="random,block,grid",
      seed=0,                    # masking noise, the same every time for comparable grids
      min_panel_size=128,        # small images are enlarged (pixel repetition) to this width
      every_steps=1000,          # pretraining: a TensorBoard grid every N steps and at the
                                 # end; 0 = off
  ))
  # The raw_pixels baseline: logistic regression on eval-preprocessed pixels (scikit-learn).
  c.raw_pixels = ml_collections.ConfigDict(dict(C=1.0, max_iter=1000))
  return c


def smoke(c: ml_collections.ConfigDict, image_size: int, patch_size: int
          ) -> ml_collections.ConfigDict:
  """Shrinks `c` in place to a run of all stages in about a minute on a 2-core CPU."""
  c.model.variant = f"mu/{patch_size}"
  c.model.decoder_width, c.model.decoder_depth, c.model.decoder_heads = 32, 1, 2
  c.model.dtype = "float32"
  c.data.image_size = image_size
  c.data.eval_batch_size = 32
  c.visualize.every_steps = 0     # tests/test_visualize.py covers it; every smoke run need not
  for name in STAGES:
    s = c[name]
    s.batch_size, s.num_steps, s.warmup_epochs = 16, 6, 0
    s.log_every_steps, s.checkpoint_every_steps = 2, 3
  c.segment.update(crop_size=image_size, eval_size=image_size, scale=(2 * image_size, image_size),
                   eval_stride=image_size // 2 or 1, eval_scale=(2 * image_size, image_size),
                   channels=16, neck_channels=16, aux_channels=8, overlay_images=2,
                   feature_blocks=(1, 2, 2, 2))
  return c
