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

Targets: "input" (pipeline.py: the tf.data pretrain pipeline beside pil_loader.py);
"pretrain", "finetune" and "segment" (step.py: one optimizer step of the stage's task, MAE
with a --decoder=width,depth,heads decoder, the fine-tune classifier with layer decay, or ViT +
pyramid + UPerNet on --image_size crops with --num_classes classes).
--make_fixture writes the JPEGs (fixture.py) and exits. Each target's module is imported
only when it runs, so the train-step targets never load TensorFlow. The PyTorch side of the
train-step benchmark is `python -m mae_jax_bench.torch_mae` (torch_mae.py).
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


TARGETS: dict[str, Callable[[], dict[str, Any]]] = {
    "input": _input,
    "pretrain": lambda: _train_step("pretrain"),
    "finetune": lambda: _train_step("finetune"),
    "segment": lambda: _train_step("segment"),
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
