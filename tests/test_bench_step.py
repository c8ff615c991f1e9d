"""`mae-jax-bench --target=pretrain|finetune` (mae_jax_bench): the real train step, JSON out,
no TensorFlow; the PyTorch side (mae_jax_bench.torch_mae) and the FLOP counts both report."""

import json
import os
import subprocess
import sys

import pytest

from mae_jax import flops
from mae_jax.models.vit import decode_variant
from mae_jax_bench import peaks, step
from tests.helpers import REPO

pytestmark = pytest.mark.slow   # JAX and PyTorch train steps in subprocesses

# Both targets through run.main in one fresh interpreter (one import of JAX, not two); app.run
# ends each with SystemExit.
_PROGRAM = """
import sys
from mae_jax_bench import run
for target in ("pretrain", "finetune", "segment"):
  try:
    run.main(["mae-jax-bench", "--target=" + target] + sys.argv[1:])
  except SystemExit as e:
    if e.code:
      raise
print("tensorflow loaded:", "tensorflow" in sys.modules)
"""


def test_train_step_bench_prints_json_without_tensorflow():
  args = ["--variant=mu/4", "--image_size=16", "--batch_size=4", "--steps=2",
          "--warmup_steps=1", "--decoder=32,1,2", "--num_classes=10"]
  env = dict(os.environ, PYTHONPATH=REPO, XLA_FLAGS="--xla_force_host_platform_device_count=1")
  proc = subprocess.run([sys.executable, "-c", _PROGRAM, *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.strip().splitlines()
  assert lines[-1] == "tensorflow loaded: False"
  results = [json.loads(l) for l in lines if l.startswith("{")]
  assert [r["target"] for r in results] == ["pretrain", "finetune", "segment"]
  for result in results[:2]:
    _check(result)
  segment = results[2]     # UPerNet on 16 px crops: the encoder on every patch, and more
  assert segment["images_per_sec"] > 0
  assert segment["flops_per_image"] > flops.classifier_flops_per_image("mu/4", 16, 10)


def _check(result):
  assert result["batch_size"] == 4
  assert result["images_per_sec"] > 0 and result["step_ms"] > 0 and result["compile_s"] > 0
  assert abs(result["images_per_sec"] * result["step_ms"] / 1000 - 4) < 0.1
  # mu/4 at 16 px: 16 patches; at least the patch embedding's forward FLOPs per image.
  assert result["flops_per_image"] > 2 * 16 * (4 * 4 * 3) * 32
  assert result["flops_per_image"] == (
      flops.pretrain_flops_per_image("mu/4", 16, 0.75, (32, 1, 2)) if result["target"] == "pretrain"
      else flops.classifier_flops_per_image("mu/4", 16, 10))
  assert result["mfu"] is None and result["peak_memory_bytes"] is None   # CPU: unknown


def test_jaxpr_count_equals_the_hand_count_and_counts_transposed_convolutions_once():
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from mae_jax import config_lib  # pylint: disable=g-import-not-at-top
  from mae_jax.tasks import images  # pylint: disable=g-import-not-at-top
  config = config_lib.base_config("images")
  config.model.variant, config.data.image_size, config.finetune.init_from = "mu/4", 16, "random"
  model = images.classifier_task(config, "finetune", 10, workdir="").model
  x = np.zeros((3, 16, 16, 3), np.float32)
  variables = model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, x)
  v = decode_variant("mu/4")
  dense, attention = flops._blocks(17, v.width, v.depth, v.mlp_ratio)  # pylint: disable=protected-access
  by_hand = dense + attention + flops._patch_embed(v, 16) + 2 * v.width * 10  # pylint: disable=protected-access
  assert flops.forward_matmul_flops(
      lambda p, x: model.apply(p, x, train=False), variables, x) == 3 * by_hand
  # 2x2 stride 2: each input pixel meets each tap once: 2 * H * W * C_in * C_out * 4.
  up = nn.ConvTranspose(5, (2, 2), strides=(2, 2))
  y = np.zeros((1, 6, 7, 3), np.float32)
  count = flops.forward_matmul_flops(up.apply, up.init(jax.random.key(0), y), y)
  assert count == 2 * 6 * 7 * 3 * 5 * 4


def test_peak_flops_table():
  assert peaks.peak_flops("NVIDIA H100 80GB HBM3", "bfloat16") == 989e12
  assert peaks.peak_flops("TPU v4", "float32") is None
  assert peaks.peak_flops("cpu", "float32") is None


def test_model_flops_match_torch_flop_counter_at_full_size():
  # torch FlopCounterMode on HF ViTMAEForPreTraining, L/16 @224, mask 0.75, decoder 512x8
  # (python -m mae_jax_bench.torch_mae on an H100): 124,667,224,064 per image.
  assert flops.pretrain_flops_per_image("L/16", 224, 0.75) == 124_667_224_064


def test_classifier_flops_match_torch_flop_counter():
  # The fine-tune count against FlopCounterMode on HF's ViTForImageClassification, the same
  # encoder on every patch plus a linear head, one forward + backward (the images need no
  # gradient). Our count adds attention, which FlopCounterMode does not see on a CPU (fused
  # SDPA kernel, as in the compare test above): 3.5x 4 T^2 D per block, T = 1 + 16 tokens.
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  from torch.utils.flop_counter import FlopCounterMode  # pylint: disable=g-import-not-at-top

  variant, image_size, num_classes, batch = "mu/8", 32, 10, 4
  v = decode_variant(variant)
  config = transformers.ViTConfig(
      hidden_size=v.width, num_hidden_layers=v.depth, num_attention_heads=v.num_heads,
      intermediate_size=int(v.mlp_ratio * v.width), patch_size=v.patch_size,
      image_size=image_size, num_labels=num_classes, attn_implementation="sdpa")
  model = transformers.ViTForImageClassification(config).train()
  images = torch.randn(batch, 3, image_size, image_size)
  labels = torch.arange(batch) % num_classes
  with FlopCounterMode(display=False) as counter:
    model(pixel_values=images, labels=labels).loss.backward()
  tokens = 1 + (image_size // v.patch_size) ** 2
  attention = 7 * v.depth * 4 * tokens**2 * v.width // 2
  assert (flops.classifier_flops_per_image(variant, image_size, num_classes)
          == counter.get_total_flops() // batch + attention)


def test_timed_rounds_lockstep_waits_for_each_go(monkeypatch, capsys):
  import io  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(sys, "stdin", io.StringIO("go\ngo\n"))      # then end of input
  times = iter([0.5, 0.25, 1.0])
  rounds = step.timed_rounds(lambda: next(times), rounds=3, lockstep=True)
  assert rounds == [0.5, 0.25]                                       # stopped at end of input
  assert capsys.readouterr().out.splitlines() == ["ready", "done 500.0", "done 250.0"]
  assert step.timed_rounds(lambda: 2.0, rounds=2, lockstep=False) == [2.0, 2.0]


def test_torch_compare_takes_turns_and_reports_both():
  cmd = [sys.executable, "-m", "mae_jax_bench.torch_mae", "--compare",
         "--variant=mu/8", "--image_size=32", "--batch_size=4", "--steps=1", "--rounds=2",
         "--warmup_steps=1", "--decoder=32,1,2"]
  env = dict(os.environ, PYTHONPATH=REPO, XLA_FLAGS="--xla_force_host_platform_device_count=1")
  proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.strip().splitlines()
  assert [l.split(":")[0] for l in lines if l.startswith("round")] == ["round 0", "round 1"]
  result = json.loads(lines[-1])
  for side in ("jax", "torch"):
    assert len(result[side]["step_ms_rounds"]) == 2
    assert result[side]["step_ms"] == min(result[side]["step_ms_rounds"])
    assert result[side]["mask_ratio"] == 0.75 and result[side]["batch_size"] == 4
  # Our hand count of model FLOPs is torch's FlopCounterMode count of the same step, less
  # attention: FlopCounterMode has no entry for torch's fused CPU SDPA kernel (it has for the
  # CUDA ones: the L/16 test below). Attention forward = 4 T^2 D per block, 3.5x in training:
  # encoder 2 blocks of 1 + 4 kept tokens, width 32; decoder 1 block of 1 + 16 tokens, width 32.
  attention = 7 * (2 * 4 * 5**2 * 32 + 1 * 4 * 17**2 * 32) // 2
  assert result["jax"]["flops_per_image"] == result["torch"]["flops_per_image"] + attention
  assert result["jax_over_torch"] == round(
      result["jax"]["images_per_sec"] / result["torch"]["images_per_sec"], 3)
