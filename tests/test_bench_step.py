"""`mae_jax.bench --target=pretrain|finetune`: the real train step, JSON out, no TensorFlow."""

import json
import os
import subprocess
import sys

from mae_jax import bench
from tests.helpers import REPO

# Both targets through bench.main in one fresh interpreter (one import of JAX, not two).
_PROGRAM = """
import sys
from absl import flags
from mae_jax import bench
for target in ("pretrain", "finetune"):
  bench.main(flags.FLAGS(["bench", "--target=" + target] + sys.argv[1:]))
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
  assert [r["target"] for r in results] == ["pretrain", "finetune"]
  for result in results:
    _check(result)


def _check(result):
  assert result["batch_size"] == 4
  assert result["images_per_sec"] > 0 and result["step_ms"] > 0 and result["compile_s"] > 0
  assert abs(result["images_per_sec"] * result["step_ms"] / 1000 - 4) < 0.1
  # mu/4 at 16 px: 16 patches; at least the patch embedding's forward FLOPs per image.
  assert result["flops_per_image"] > 2 * 16 * (4 * 4 * 3) * 32
  assert result["mfu"] is None and result["peak_memory_bytes"] is None   # CPU: unknown


def test_peak_flops_table():
  assert bench.peak_flops("NVIDIA H100 80GB HBM3", "bfloat16") == 989e12
  assert bench.peak_flops("TPU v4", "float32") is None
  assert bench.peak_flops("cpu", "float32") is None


def test_timed_rounds_lockstep_waits_for_each_go(monkeypatch, capsys):
  import io  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(sys, "stdin", io.StringIO("go\ngo\n"))      # then end of input
  times = iter([0.5, 0.25, 1.0])
  rounds = bench.timed_rounds(lambda: next(times), rounds=3, lockstep=True)
  assert rounds == [0.5, 0.25]                                       # stopped at end of input
  assert capsys.readouterr().out.splitlines() == ["ready", "done 500.0", "done 250.0"]
  assert bench.timed_rounds(lambda: 2.0, rounds=2, lockstep=False) == [2.0, 2.0]


def test_torch_compare_takes_turns_and_reports_both():
  cmd = [sys.executable, os.path.join(REPO, "bench", "torch_mae.py"), "--compare",
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
  assert result["jax_over_torch"] == round(
      result["jax"]["images_per_sec"] / result["torch"]["images_per_sec"], 3)
