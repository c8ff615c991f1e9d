"""Shared pieces of the experiment configs in configs/.

Each file in configs/ is a flat `get_config(arg)` that starts from `base_config(modality)`
and changes what its study changes; `:smoke` shrinks any of them to a ~1 minute CPU run.
"""

import os

import ml_collections

from mae_jax import registry
from mae_jax.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Top-level fields of every config, beside config.model, config.data and the sections.
TOP_FIELDS = ("stages", "baselines", "seed", "parallel", "model", "data")


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


def loop_section(**fields) -> ml_collections.ConfigDict:
  """A stage's config section: what the loop (train.train_stage) reads, then the stage's own
  `fields` (every other field the stage reads, and nothing it does not)."""
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
      log_every_steps=50,
      eval_every_epochs=10,       # always evaluated at the end too
      checkpoint_every_steps=500,
      keep_checkpoints=2,
      # Choose base_lr per run from this grid (selection.py): one trial each on the training
      # examples less an lr_holdout slice, scored on that slice; () = train at base_lr.
      lr_grid=(),
      lr_holdout=0.1,
      lr_search_steps=0,          # a trial's length; 0 = the stage's own
  )
  common.update(fields)
  return ml_collections.ConfigDict(common)


def base_config(modality: str) -> ml_collections.ConfigDict:
  """Every field a config of `modality` (registry.py) can set, with defaults: the model, the
  data (the modality's fields), one section per stage (its fields) and the modality's other
  sections. A field outside these is read by no stage, and `check_fields` refuses it."""
  m = registry.get(modality)
  c = ml_collections.ConfigDict()
  c.stages = ",".join(s.name for s in m.stages if s.trains)   # comma-separated, in order
  c.baselines = ""               # comma-separated subset of the modality's baselines
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
      dataset="",                # which values each modality serves: its module's docstring
      eval_batch_size=256,
      # The training labels the labelled stages and baselines keep (selection.py): a fraction
      # in (0, 1] or a count > 1; the same examples for every arm; pretraining reads all.
      labels=1.0,
      **m.data_fields()))
  for stage in m.stages:
    if stage.section is not None:
      c[stage.name] = stage.section()
  for name, section in m.sections.items():
    c[name] = section()
  return c


def check_fields(config: ml_collections.ConfigDict) -> None:
  """Refuses a field that no stage of the config's modality reads (a typo, or a field of
  another modality's stage), naming it."""
  m = registry.for_config(config)
  known = base_config(m.name)
  for key in config:
    if key not in known:
      raise ConfigError(f"config.{key}: no stage of {m.name} reads it (its sections: "
                        f"{', '.join(k for k in known if k not in TOP_FIELDS[:4])})")
    if isinstance(known[key], ml_collections.ConfigDict):
      unread = [f for f in config[key] if f not in known[key]]
      if unread:
        raise ConfigError(f"config.{key}.{unread[0]}: no stage of {m.name} reads it; "
                          f"config.{key} has {', '.join(known[key])}")


def stage_sections(c: ml_collections.ConfigDict) -> list[str]:
  """The names of `c`'s stage sections (its modality's stages that have one)."""
  return [s.name for s in registry.for_config(c).stages if s.section is not None and s.name in c]


def smoke(c: ml_collections.ConfigDict, image_size: int, patch_size: int
          ) -> ml_collections.ConfigDict:
  """Shrinks `c` in place to a run of all stages in about a minute on a 2-core CPU."""
  c.model.variant = f"mu/{patch_size}"
  c.model.decoder_width, c.model.decoder_depth, c.model.decoder_heads = 32, 1, 2
  c.model.dtype = "float32"
  c.data.eval_batch_size = 32
  for name in stage_sections(c):
    s = c[name]
    s.batch_size, s.num_steps, s.warmup_epochs = 16, 6, 0
    s.log_every_steps, s.checkpoint_every_steps = 2, 3
  m = registry.for_config(c)
  if m.smoke is not None:
    m.smoke(c, image_size)
  return c


# Shared recipes: the configs that follow one published recipe take it from here, so that they
# cannot drift apart; each still says in its docstring whose recipe it is.

# The long-horizon benchmarks' baselines beside the MAE (configs/elecdemand.py, weather.py).
LONG_HORIZON_BASELINES = ("persistence,seasonal_naive,dlinear,nlinear,linear,lstm,gru,rnn,"
                          "forecast_random_init,patchtst")
# The TinyImageNet study's forecasting baselines (series_study_protocol, configs/etth1.py).
STUDY_SERIES_BASELINES = "persistence,linear,rnn,lstm,gru,forecast_random_init,patchtst"
# (pretrain, forecast) epochs: PatchTST_self_supervised's, and the short CPU schedule of
# docs/results/series.md (three seeds in under two hours on 2 shared cores).
PATCHTST_EPOCHS = (10, 20)
CPU_SERIES_EPOCHS = (2, 1)


def patchtst_recipe(c: ml_collections.ConfigDict, pretrain_epochs: int = PATCHTST_EPOCHS[0],
                    forecast_epochs: int = PATCHTST_EPOCHS[1], checkpoint_every_steps: int = 500
                    ) -> ml_collections.ConfigDict:
  """PatchTST_self_supervised's model and schedule on a series config `c`, in place: `tst/12`,
  40% of the patches masked, lr 1e-4 at batch 64, pretrain then forecast for the given epochs."""
  c.stages = "pretrain,forecast"
  c.model.variant = "tst/12"
  c.model.mask_ratio = 0.4
  c.model.norm_pix_loss = False        # RevIN already normalises each series
  c.model.decoder_width, c.model.decoder_depth, c.model.decoder_heads = 128, 1, 16
  for stage in stage_sections(c):
    c[stage].checkpoint_every_steps = checkpoint_every_steps
    c[stage].log_every_steps = 100
  # A warmup epoch, except where the whole schedule is one (its lr, 1e-4, needs none).
  c.pretrain.update(batch_size=64, num_epochs=pretrain_epochs, base_lr=4e-4,
                    warmup_epochs=min(1, pretrain_epochs - 1), weight_decay=0.0, b2=0.999)
  c.forecast.update(batch_size=64, num_epochs=forecast_epochs, base_lr=4e-4,
                    warmup_epochs=min(1, forecast_epochs - 1), head_dropout=0.2,
                    eval_every_epochs=max(1, forecast_epochs // 4))
  return c


def series_study_protocol(c: ml_collections.ConfigDict, smooth: int = 24
                          ) -> ml_collections.ConfigDict:
  """The TinyImageNet study's forecasting protocol on `c`, in place: one variable, min-max
  scaled, a chronological 70/20/10 split, 24 lagged values -> the next one, `tst/4` at 75%
  masking (the first of its three), the RNN / LSTM / GRU beside. The study names no smoothing
  window for its plot: `smooth` steps (a day)."""
  c.baselines = STUDY_SERIES_BASELINES
  c.data.update(protocol="study", split=(0.7, 0.2, 0.1), setting="S", scaling="minmax",
                lookback=24, horizon=1)
  c.data.season = min(c.data.season, c.data.lookback)  # seasonal_naive, if asked for
  c.model.variant = "tst/4"
  c.model.mask_ratio = 0.75
  c.forecast.plot_smooth = smooth
  return c


def series_smoke(c: ml_collections.ConfigDict, study: bool) -> ml_collections.ConfigDict:
  """`smoke` for a series config: short windows unless the study's own (24 -> 1) are kept."""
  smoke(c, image_size=32, patch_size=4)
  if not study:
    c.data.update(lookback=16, horizon=4, season=8)
  c.forecast.hidden = 8
  return c


def remasker_recipe(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """ReMasker's imputer on a tables config `c`, in place: width 32, decoder depth 4, half the
  observed entries re-masked; the impute stage's schedule stays the config's."""
  c.stages = "impute"
  c.model.variant = "remasker/1"
  c.model.mask_ratio = 0.5
  c.model.norm_pix_loss = False
  c.model.decoder_width, c.model.decoder_depth, c.model.decoder_heads = 32, 4, 4
  return c
