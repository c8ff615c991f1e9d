"""The benchmark command: `mae-jax-bench --target=T ...` (= `python -m mae_jax_bench`).

The last stdout line is a JSON object.

  # Photo-sized JPEGs to measure on (root/train/<class>/*.jpg, ~500x375, from real photos):
  mae-jax-bench --make_fixture=/tmp/photos --fixture_images=1024
  # The pretrain input pipeline alone, beside a plain PIL loader in 2 worker processes:
  mae-jax-bench --target=input --data=images:/tmp/photos --image_size=224 \
      --batch_size=64 --num_batches=40
  # The real jitted train step (train.make_train_step, AdamW) on synthetic data:
  mae-jax-bench --target=pretrain --variant=B/16 --image_size=224 --batch_size=8 \
      --mask_ratio=0.75 --steps=10 --dtype=float32

  # The series pretrain and forecast steps at configs/etth1.py's sizes (look-back 512,
  # horizon 96, 7 variables, batch 64 windows, tst/12, mask 0.4, decoder 128,1,16):
  mae-jax-bench --target=timeseries --steps=5 --rounds=3
  # UNETR on 64^3 volumes (Ti/16, feature size 16, 14 classes, batch 1), Dice + CE, AdamW:
  mae-jax-bench --target=segment3d --steps=5 --rounds=3

Targets: "input" (pipeline.py: the tf.data pretrain pipeline beside pil_loader.py);
"pretrain", "finetune" and "segment" (step.py: one optimizer step of the stage's task, MAE
with a --decoder=width,depth,heads decoder, the fine-tune classifier with layer decay, or ViT +
pyramid + UPerNet on --image_size crops with --num_classes classes); "timeseries" (series.py:
the step of each of --stages, the MAE on look-back windows and the forecast transformer, on
synthetic windows of --lookback steps and --num_variables variables, --horizon steps
forecast). For "timeseries", --variant, --batch_size, --mask_ratio and --decoder keep
configs/etth1.py's values unless given, and the last line holds one result per stage:
{"target": "timeseries", "framework": "jax", "pretrain": {...}, "forecast": {...}}.
"segment3d" (volumes.py): UNETR's step with MONAI's Dice + CE loss on --roi^3 volumes of
--in_channels channels; --variant, --batch_size, --num_classes and --feature_size keep
volumes.py's defaults (Ti/16, 1, 14, 16) unless given.
--make_fixture writes the JPEGs (fixture.py) and exits. Each target's module is imported
only when it runs, so the train-step targets never load TensorFlow. The PyTorch sides of the
train-step benchmarks are `python -m mae_jax_bench.torch_mae` (torch_mae.py, HF ViTMAE),
`python -m mae_jax_bench.torch_patchtst` (torch_patchtst.py, HF PatchTST) and
`python -m mae_jax_bench.torch_unetr` (torch_unetr.py, MONAI's UNETR).
"""

import json
import sys
from typing import Any, Callable

from absl import app, flags

from mae_jax import cli_args

_TARGET = flags.DEFINE_string("target", "input", "What to measure: one of TARGETS.")
_DATA = flags.DEFINE_string("data", None,
                            "config.data.dataset to read, e.g. images:DIR (any folder).")
_DATA_DIR = flags.DEFINE_string("data_dir", "", "TFDS data dir for TFDS datasets.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 224, "Output resolution.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Images per batch.")
_NUM_BATCHES = flags.DEFINE_integer("num_batches", 40, "Timed batches per round.")
_WARMUP = flags.DEFINE_integer("warmup_batches", 4, "Untimed batches before each round.")
_ROUNDS = flags.DEFINE_integer("rounds", 2, "input: alternating rounds of ours and the baseline; "
                               "train steps: rounds of --steps timed steps. The best counts.")
_LOCKSTEP = flags.DEFINE_bool("lockstep", False, "Train steps: print 'ready', then before each "
                              "round wait for a line on stdin and print 'done MS' after it "
                              "(torch_mae --compare alternates two processes so).")
_PIL_WORKERS = flags.DEFINE_integer("pil_workers", 2, "Worker processes of the PIL baseline; "
                                    "0 = no baseline.")
_CACHE = flags.DEFINE_list("cache", ["memory"], "input: config.data.cache modes to measure, "
                           "taking turns each round: memory, stream.")
_VARIANT = flags.DEFINE_string("variant", "B/16", "Train steps: model variant.")
_MASK_RATIO = flags.DEFINE_float("mask_ratio", 0.75, "pretrain: fraction of patches removed.")
_STEPS = flags.DEFINE_integer("steps", 10, "Train steps: timed steps.")
_WARMUP_STEPS = flags.DEFINE_integer("warmup_steps", 2, "Train steps: untimed steps after the "
                                     "compiling one.")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Compute dtype.")
_ATTENTION = flags.DEFINE_string("attention", "auto", "Train steps: config.model.attention "
                                 "(models/attention.py).")
_PROFILE_DIR = flags.DEFINE_string("profile_dir", None, "Train steps: after timing, trace --steps "
                                   "steps with jax.profiler into DIR and print the costliest "
                                   "ops to stderr (bench/profiling.py).")
_DECODER = flags.DEFINE_list("decoder", ["512", "8", "16"], "pretrain: decoder width,depth,heads.")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", 1000,
                                    "finetune / segment: classes of the head.")
_LOOKBACK = flags.DEFINE_integer("lookback", None, "timeseries: look-back steps per window "
                                 "(default: configs/etth1.py's).")
_HORIZON = flags.DEFINE_integer("horizon", None, "timeseries: steps forecast (default: "
                                "configs/etth1.py's).")
_NUM_VARIABLES = flags.DEFINE_integer("num_variables", 7, "timeseries: variables per window "
                                      "(ETTh1 has 7).")
_STAGES = flags.DEFINE_list("stages", ["pretrain", "forecast"], "timeseries: the steps to time, "
                            "in this order.")
_ROI = flags.DEFINE_integer("roi", None, "segment3d: side of the cubic crops (default: "
                            "volumes.py's, 64).")
_FEATURE_SIZE = flags.DEFINE_integer("feature_size", None, "segment3d: UNETR's feature size "
                                     "(default: volumes.py's, 16).")
_IN_CHANNELS = flags.DEFINE_integer("in_channels", 1, "segment3d: channels of the volumes.")
_CONV = flags.DEFINE_enum("conv", "auto", ["auto", "xla", "slices"], "segment3d: how UNETR's "
                          "3^3 convolutions run (models/unetr.py conv_same).")
_MAKE_FIXTURE = flags.DEFINE_string("make_fixture", None, "Write photo-sized JPEGs in "
                                    "DIR/{train,val}/<class>/ and exit.")
_FIXTURE_IMAGES = flags.DEFINE_integer("fixture_images", 1024, "Training images to write.")
_FIXTURE_CLASSES = flags.DEFINE_integer("fixture_classes", 8, "Classes to write.")


def _input() -> dict[str, Any]:
  if not _DATA.value:
    raise app.UsageError("--data is required for --target=input (e.g. images:DIR)")
  from . import pipeline  # pylint: disable=g-import-not-at-top  (TensorFlow)
  return pipeline.bench_input(
      _DATA.value, _DATA_DIR.value or None, image_size=_IMAGE_SIZE.value,
      batch_size=_BATCH_SIZE.value, num_batches=_NUM_BATCHES.value, warmup=_WARMUP.value,
      rounds=_ROUNDS.value, pil_workers=_PIL_WORKERS.value, caches=tuple(_CACHE.value))


def _train_step(target: str) -> dict[str, Any]:
  from . import step  # pylint: disable=g-import-not-at-top  (JAX, never TensorFlow)
  width, depth, heads = (int(x) for x in _DECODER.value)
  return step.bench_train_step(
      target, variant=_VARIANT.value, image_size=_IMAGE_SIZE.value,
      batch_size=_BATCH_SIZE.value, mask_ratio=_MASK_RATIO.value, decoder=(width, depth, heads),
      num_classes=_NUM_CLASSES.value, dtype=_DTYPE.value, attention=_ATTENTION.value,
      steps=_STEPS.value, warmup_steps=_WARMUP_STEPS.value, rounds=_ROUNDS.value,
      lockstep=_LOCKSTEP.value, profile_dir=_PROFILE_DIR.value)


def _given(flag: flags.FlagHolder) -> Any:
  """The flag's value if the command line sets it, else None (the target's own default)."""
  return flag.value if flags.FLAGS[flag.name].present else None


def _timeseries() -> dict[str, Any]:
  from . import series  # pylint: disable=g-import-not-at-top  (JAX, never TensorFlow)
  decoder = _given(_DECODER)
  return series.bench_series_step(
      stages=tuple(_STAGES.value), variant=_given(_VARIANT), lookback=_LOOKBACK.value,
      horizon=_HORIZON.value, num_variables=_NUM_VARIABLES.value,
      batch_size=_given(_BATCH_SIZE), mask_ratio=_given(_MASK_RATIO),
      decoder=tuple(int(x) for x in decoder) if decoder else None, dtype=_DTYPE.value,
      attention=_ATTENTION.value, steps=_STEPS.value, warmup_steps=_WARMUP_STEPS.value,
      rounds=_ROUNDS.value, lockstep=_LOCKSTEP.value, profile_dir=_PROFILE_DIR.value)


def _segment3d() -> dict[str, Any]:
  from . import volumes  # pylint: disable=g-import-not-at-top  (JAX, never TensorFlow)
  return volumes.bench_volume_step(
      variant=_given(_VARIANT), roi=_ROI.value, batch_size=_given(_BATCH_SIZE),
      num_classes=_given(_NUM_CLASSES), feature_size=_FEATURE_SIZE.value,
      in_channels=_IN_CHANNELS.value, dtype=_DTYPE.value, attention=_ATTENTION.value,
      conv=_CONV.value, steps=_STEPS.value, warmup_steps=_WARMUP_STEPS.value,
      rounds=_ROUNDS.value,
      lockstep=_LOCKSTEP.value, profile_dir=_PROFILE_DIR.value)


TARGETS: dict[str, Callable[[], dict[str, Any]]] = {
    "input": _input,
    "pretrain": lambda: _train_step("pretrain"),
    "finetune": lambda: _train_step("finetune"),
    "segment": lambda: _train_step("segment"),
    "timeseries": _timeseries,
    "segment3d": _segment3d,
}


def _main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _MAKE_FIXTURE.value:
    from . import fixture  # pylint: disable=g-import-not-at-top
    fixture.make_fixture(_MAKE_FIXTURE.value, _FIXTURE_IMAGES.value, _FIXTURE_CLASSES.value)
    print(json.dumps({"fixture": _MAKE_FIXTURE.value, "images": _FIXTURE_IMAGES.value}))
    return
  if _TARGET.value not in TARGETS:
    raise app.UsageError(f"--target must be one of {sorted(TARGETS)}, got {_TARGET.value!r}")
  result = TARGETS[_TARGET.value]()
  sys.stdout.flush()
  print(json.dumps(result), flush=True)


def main(argv: list[str]) -> None:
  """Parses `argv` (argv[0]: the program's name) and runs the benchmark; exits as app.run does.

  The caller re-executes with a faster host allocator first, before JAX is imported
  (mae_jax.allocator.reexec(): mae_jax/cli.py and __main__.py do).
  """
  cli_args.show_flags_in_help(__name__, argv[0])
  app.run(_main, argv=argv)
