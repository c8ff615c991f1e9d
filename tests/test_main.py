"""The real entry point on every config's :smoke variant, and every config file loading."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from mae_jax import cli_args, config_lib, experiment, registry
from mae_jax.tasks import images, segmentation, series, tables, volumes
from mae_jax.models import decode_variant
from tests.helpers import CONFIG_FILES, REPO, load_config

IMAGE_STAGES = ("pretrain", "linprobe", "finetune")   # what a classification config runs


@pytest.mark.parametrize("name", CONFIG_FILES)
@pytest.mark.parametrize("arg", [None, "smoke"])
def test_config_loads_validates_and_builds(name, arg):
  config = load_config(name, arg)
  experiment.validate(config)
  modality = registry.for_config(config).name
  assert config_lib.stage_sections(config), name
  for stage in config_lib.stage_sections(config):
    for field in ("batch_size", "num_epochs", "base_lr", "warmup_epochs",
                  "checkpoint_every_steps"):
      assert field in config[stage], f"{name}: config.{stage}.{field} missing"
  rngs = {"params": jax.random.key(0), "masking": jax.random.key(1)}
  if modality == "tables":
    # One token per entry of an 8-column row, two entries missing.
    mae = tables.impute_task(config).model
    x = jax.ShapeDtypeStruct((2, 8, 1), jnp.float32)
    observed = jnp.arange(8) < 6
    loss, pred, _ = jax.eval_shape(lambda x: mae.apply(
        mae.init(rngs, x), x, rngs=rngs, observed=jnp.broadcast_to(observed, (2, 8))), x)
    assert loss.shape == () and pred.shape == (2, 8, 1)
    return
  if modality == "volumes":
    # The MAE and the UNETR on one roi crop (shapes only: ViT-B on 96^3 would not fit a test).
    x = jax.ShapeDtypeStruct((2, *config.data.roi_size, 1), jnp.float32)
    mae = volumes.pretrain_task(config).model
    loss, _, _ = jax.eval_shape(lambda x: mae.apply(mae.init(rngs, x), x, rngs=rngs), x)
    assert loss.shape == ()
    unetr = volumes.segment3d_task(config, "unused", num_classes=5).model
    assert jax.eval_shape(lambda x: unetr.apply(unetr.init(rngs, x), x), x).shape == (
        2, *config.data.roi_size, 5)
    return
  if modality == "series":
    # The MAE on one variable's look-back; the forecaster on every variable's.
    p = decode_variant(config.model.variant).patch_size
    x = jax.ShapeDtypeStruct((2, config.data.lookback // p * p, 1), jnp.float32)
    mae = series.pretrain_task(config).model
    loss, _, _ = jax.eval_shape(lambda x: mae.apply(mae.init(rngs, x), x, rngs=rngs), x)
    assert loss.shape == ()
    model = series.forecast_task(config, "unused", num_variables=7).model
    x = jax.ShapeDtypeStruct((2, config.data.lookback, 7), jnp.float32)
    assert jax.eval_shape(lambda x: model.apply(model.init(rngs, x), x), x).shape == (
        2, config.data.horizon, 7)
    return
  # Both models build at the config's size (shapes only: ViT-L would not fit a unit test).
  size = config.data.image_size
  x = jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32)
  mae = images.pretrain_task(config).model
  loss, _, _ = jax.eval_shape(lambda x: mae.apply(mae.init(rngs, x), x, rngs=rngs), x)
  assert loss.shape == ()
  if modality == "images":
    clf = images.classifier_task(config, "finetune", 10, "unused").model
    assert jax.eval_shape(lambda x: clf.apply(clf.init(rngs, x), x), x).shape == (2, 10)
  else:
    assert modality == "segmentation", modality
    seg = segmentation.segment_task(config, "unused").model
    crop = config.segment.crop_size
    x = jax.ShapeDtypeStruct((2, crop, crop, 3), jnp.float32)
    logits, _ = jax.eval_shape(lambda x: seg.apply(seg.init(rngs, x), x), x)
    # UPerNet's logits come at its finest pyramid level: rescales' largest times the patch grid.
    side = int(max(config.segment.rescales) * crop) // seg.patch_size
    assert logits.shape[:3] == (2, side, side)


def test_unknown_stage_is_refused():
  config = load_config("digits.py", "smoke")
  config.stages = "pretrain,probe"
  with pytest.raises(ValueError, match="config.stages: unknown stage 'probe'"):
    experiment.validate(config)


def test_cudnn_attention_off_nvidia_gpus_is_a_config_error():
  config = load_config("digits.py", "smoke")
  config.model.attention, config.model.dtype = "cudnn", "bfloat16"    # tests run on CPUs
  with pytest.raises(ValueError, match="attention='cudnn' needs an NVIDIA GPU"):
    experiment.validate(config)


def test_shipped_configs_are_found_by_bare_name(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert config_lib.shipped_configs() == sorted(f[:-3] for f in CONFIG_FILES)
  digits = os.path.join(REPO, "configs", "digits.py")
  for spec in ("digits", "digits.py"):
    assert os.path.samefile(config_lib.resolve_config(spec), digits)
  assert config_lib.resolve_config("digits:smoke").endswith("digits.py:smoke")
  assert cli_args.resolve_config_flags(["prog", "--config", "pets:size=L", "--config.seed=1"])[2] \
      .endswith(os.path.join("configs", "pets.py:size=L"))
  # A file in the working directory, a path and an unknown name stay as given.
  (tmp_path / "digits.py").write_text("")
  for spec in ("digits.py:smoke", "configs/digits.py", "nonesuch:smoke"):
    assert config_lib.resolve_config(spec) == spec
  # A folder of the same name (a workdir, say) does not hide the shipped config.
  (tmp_path / "pets").mkdir()
  assert config_lib.resolve_config("pets").endswith(os.path.join("configs", "pets.py"))


@pytest.mark.slow
def test_console_scripts_run_from_another_directory(tmp_path):
  # --help lists each program's own flags (absl's --help exits with status 1, argparse's 0).
  for name, flag in (("mae-jax-convert", "--input"), ("mae-jax-bench", "--target"),
                     ("mae-jax-prepare", "--images"), ("mae-jax-sweep", "--sweep"),
                     ("mae-jax-predict", "--images"),
                     ("mae-jax-visualize", "--checkpoint"), ("mae-jax", "--workdir")):
    proc = subprocess.run([script(name), "--help"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert flag in proc.stdout, proc.stdout
  proc = subprocess.run([script("mae-jax"), "--config=nonesuch", "--workdir=w"], cwd=tmp_path,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert "'nonesuch' does not exist (a path, or one of the shipped configs: ade20k, " in proc.stderr
  assert ", ".join(f[:-3] for f in CONFIG_FILES) + ")" in proc.stderr


def _run(args, timeout=600, cwd=REPO):
  """`python ARGS` (or, with args[0] a console script's name, that command) in `cwd`."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  installed = args[0].startswith("mae-jax")
  command = [script(args[0]), *args[1:]] if installed else [sys.executable, *args]
  proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                        timeout=timeout)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
  return proc.stdout


def script(name):
  """The console script `name` that `pip install` put beside this Python."""
  path = os.path.join(os.path.dirname(sys.executable), name)
  assert os.path.exists(path), f"{path} missing: install the package (pip install -e '.[test]')"
  return path


def _check_summary(workdir, stages, baselines=()):
  with open(os.path.join(workdir, "summary.json")) as f:
    summary = json.load(f)
  for stage in stages:
    assert summary[stage]["steps"] > 0
    if stage == "pretrain":
      assert 0 < summary[stage]["loss"] < 10
      assert os.path.exists(os.path.join(workdir, "pretrain", "export", "model.json"))
    else:
      assert 0 <= summary[stage]["top1"] <= summary[stage]["top5"] <= 100
      _check_per_class(summary[stage])
    stage_dir = os.path.join(workdir, stage)
    assert os.listdir(os.path.join(stage_dir, "checkpoints"))
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(stage_dir))
    with open(os.path.join(stage_dir, "metrics.jsonl")) as f:
      records = [json.loads(line) for line in f]
    train = [r for r in records if r["split"] == "train"]
    assert {"loss", "lr", "grad_norm", "images_per_sec", "eta"} <= set(train[-1])
  for b in baselines:
    assert "top1" in summary["baselines"][b]
    _check_per_class(summary["baselines"][b])
  return summary


def _check_per_class(result):
  """Per-class top-1 of every class, whose examples add up to the top-1's."""
  acc, counts = result["per_class_top1"], result["per_class_examples"]
  assert list(acc) == list(counts) and sum(counts.values()) > 0
  correct = sum(a * counts[c] / 100 for c, a in acc.items() if a is not None)
  assert abs(100 * correct / sum(counts.values()) - result["top1"]) < 1e-6


@pytest.mark.slow
def test_digits_smoke_through_entry_point_and_rerun_skips(tmp_path):
  workdir = str(tmp_path / "run")
  cmd = ["-m", "mae_jax.main", "--config=configs/digits.py:smoke", f"--workdir={workdir}"]
  out = _run(cmd)
  assert "[pretrain] train step 2:" in out
  summary = _check_summary(workdir, IMAGE_STAGES,
                           ("linprobe_random_init", "raw_pixels", "finetune_random_init"))
  assert list(summary["linprobe"]["per_class_top1"]) == [str(d) for d in range(10)]
  assert os.path.exists(os.path.join(workdir, "per_class.png"))
  with open(os.path.join(workdir, "results.md")) as f:
    assert "## Per-class top-1" in f.read()
  # Running the same job again, through the installed command from another directory with the
  # shipped config's bare name, finds every trained stage and baseline finished.
  out = _run(["mae-jax", "--config=digits:smoke", f"--workdir={workdir}"], cwd=tmp_path)
  assert out.count("already finished") == 5
  assert _check_summary(workdir, IMAGE_STAGES) == summary


@pytest.mark.slow
@pytest.mark.parametrize("dataset, config, splits, baselines", [
    ("oxford_iiit_pet", "pets.py", "train,test", ()),
    ("tiny_imagenet", "tiny_imagenet.py", "train,validation", ("finetune_random_init",)),
    ("imagenet2012", "imagenet.py", "train,validation", ()),
])
def test_tfds_smoke_through_entry_point_on_mock_data(tmp_path, dataset, config, splits,
                                                     baselines):
  data_dir, workdir = str(tmp_path / "tfds"), str(tmp_path / "run")
  _run(["-m", "tests.mock_main", dataset, "40", splits, data_dir, "--",
        f"--config=configs/{config}:smoke", f"--workdir={workdir}",
        f"--config.data.data_dir={data_dir}"])
  _check_summary(workdir, IMAGE_STAGES, baselines)


@pytest.mark.slow
def test_imagefolder_smoke_through_entry_point(tmp_path):
  from tests.test_imagefolder import make_folder
  root, workdir = str(tmp_path / "images"), str(tmp_path / "run")
  make_folder(root, per_class=12, size=(40, 36))
  # Fine-tune runs the official augmentations: RandAugment, erasing, mixup/cutmix (soft labels).
  _run(["-m", "mae_jax.main", "--config=configs/pets.py:smoke", f"--workdir={workdir}",
        f"--config.data.dataset=imagefolder:{root}", "--config.stages=finetune",
        "--config.finetune.init_from=random"])
  summary = _check_summary(workdir, ("finetune",))
  assert summary["finetune"]["top1"] >= 0


@pytest.mark.slow
def test_missing_dataset_is_one_clear_error_without_traceback(tmp_path):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.run(
      [sys.executable, "-m", "mae_jax.main", "--config=configs/pets.py:smoke",
       f"--workdir={tmp_path / 'run'}", f"--config.data.dataset=imagefolder:{tmp_path}/none"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 1
  assert "Traceback" not in proc.stderr
  assert f"mae_jax: error: Image folder dataset '{tmp_path}/none' does not exist" in proc.stderr
