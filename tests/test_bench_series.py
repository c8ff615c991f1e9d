"""`mae-jax-bench --target=timeseries` (bench/series.py): the series pretrain and forecast steps,
JSON out, no TensorFlow; the PyTorch side (mae_jax_bench.torch_patchtst, HF PatchTST) beside it
in lockstep, and both FLOP counts against hand counts."""

import json
import os
import subprocess
import sys

import pytest

from mae_jax.models.vit import decode_variant
from tests.helpers import REPO

pytestmark = pytest.mark.slow   # JAX and PyTorch train steps in subprocesses

# Tiny sizes: mu/4 (width 32, depth 2), look-back 16 = 4 patches of 4, 4 steps ahead.
_SIZES = ["--variant=mu/4", "--lookback=16", "--horizon=4", "--num_variables=2",
          "--batch_size=4", "--steps=2", "--warmup_steps=1", "--decoder=32,1,2"]
_ENV = dict(os.environ, PYTHONPATH=REPO, XLA_FLAGS="--xla_force_host_platform_device_count=1")
_PROGRAM = """
import sys
from mae_jax_bench import run
try:
  run.main(["mae-jax-bench", "--target=timeseries"] + sys.argv[1:])
except SystemExit as e:
  if e.code:
    raise
print("done")
"""


def _forecast_flops(patches: int, cls_token: bool, attention: bool, embed_input_grad: bool
                    ) -> int:
  """Matmul FLOPs of one mu/4 forecast training step per window (2 variables, horizon 4):
  3x the forward, less the patch embedding's input gradient where it is not computed."""
  v, variables, horizon = decode_variant("mu/4"), 2, 4
  tokens = patches + cls_token
  block = 24 * tokens * v.width**2 + (4 * tokens**2 * v.width if attention else 0)
  embed = 2 * patches * v.patch_size * v.width
  head = 2 * patches * v.width * horizon
  forward = variables * (v.depth * block + embed + head)
  return 3 * forward - (0 if embed_input_grad else variables * embed)


def _check(result, stage):
  assert result["target"] == "timeseries" and result["stage"] == stage
  assert result["batch_size"] == 4 and result["num_variables"] == 2 and result["patches"] == 4
  assert (result["lookback"], result["horizon"]) == (16, 4)
  assert result["windows_per_sec"] > 0 and result["step_ms"] > 0
  # torch's is its first eager step, a few ms at these sizes: 0.0 once rounded.
  assert result["compile_s"] > 0 if result["framework"] == "jax" else result["compile_s"] >= 0
  assert abs(result["windows_per_sec"] * result["step_ms"] / 1000 - 4) < 0.1
  assert result["series_per_sec"] == pytest.approx(2 * result["windows_per_sec"], rel=1e-3)
  assert result["step_ms"] == min(result["step_ms_rounds"])
  assert result["flops_per_window"] > 0
  assert result["mask_ratio"] == (0.4 if stage == "pretrain" else None)   # configs/etth1.py's


def test_timeseries_bench_prints_both_steps():
  proc = subprocess.run([sys.executable, "-c", _PROGRAM, *_SIZES, "--rounds=2"], cwd=REPO,
                        env=_ENV, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.strip().splitlines()
  assert lines[-1] == "done"
  result = json.loads(lines[-2])
  assert (result["target"], result["framework"]) == ("timeseries", "jax")
  for stage in ("pretrain", "forecast"):
    _check(result[stage], stage)
    assert len(result[stage]["step_ms_rounds"]) == 2 and result[stage]["mfu"] is None
  assert result["pretrain"]["decoder"] == [32, 1, 2]
  # Counted from the jaxpr: the encoder over the cls token and 4 patches, attention included.
  assert result["forecast"]["flops_per_window"] == _forecast_flops(
      4, cls_token=True, attention=True, embed_input_grad=True)


def test_torch_patchtst_compare_takes_turns_per_stage():
  cmd = [sys.executable, "-m", "mae_jax_bench.torch_patchtst", "--compare", *_SIZES,
         "--rounds=2", "--threads=1"]
  proc = subprocess.run(cmd, cwd=REPO, env=_ENV, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.strip().splitlines()
  assert [l.split(":")[0] for l in lines if " round " in l] == [
      "pretrain round 0", "pretrain round 1", "forecast round 0", "forecast round 1"]
  result = json.loads(lines[-1])
  for stage in ("pretrain", "forecast"):
    for side in ("jax", "torch"):
      _check(result[side][stage], stage)
    assert set(result["jax"][stage]) <= set(result["torch"][stage]) | {"allocator"}
    assert result[f"{stage}_jax_over_torch"] == round(
        result["jax"][stage]["windows_per_sec"] / result["torch"][stage]["windows_per_sec"], 3)
  assert result["torch"]["forecast"]["threads"] == 1
  # FlopCounterMode on HF's forecaster: no cls token, and no attention (it has no entry for
  # torch's fused CPU SDPA kernel); the first layer's input needs no gradient.
  assert result["torch"]["forecast"]["flops_per_window"] == _forecast_flops(
      4, cls_token=False, attention=False, embed_input_grad=False)
