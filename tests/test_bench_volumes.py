"""`mae-jax-bench --target=segment3d` (bench/volumes.py, UNETR + Dice/CE) beside the PyTorch side
(mae_jax_bench.torch_unetr, MONAI's UNETR) in lockstep, JSON out."""

import json
import os
import subprocess
import sys

import pytest

from mae_jax_bench import torch_unetr, volumes
from tests.helpers import REPO

# Tiny sizes: MONAI's UNETR needs 16^3 patches and at least 10 blocks, so Ti/16 (12 blocks) on
# 32^3 crops (2x2x2 tokens) with 2 features and 2 classes.
_SIZES = ["--variant=Ti/16", "--roi=32", "--feature_size=2", "--num_classes=2", "--batch_size=1",
          "--steps=1", "--warmup_steps=1"]
_ENV = dict(os.environ, PYTHONPATH=REPO, XLA_FLAGS="--xla_force_host_platform_device_count=1")


def test_feature_blocks_spread_over_the_encoder():
  assert volumes.feature_blocks("B/16") == (3, 6, 9, 12)
  assert volumes.feature_blocks("Ti/8") == (4, 8, 12)
  assert volumes.feature_blocks("L/16") == (6, 12, 18, 24)


@pytest.mark.parametrize("variant, words",
                         [("Ti/8", r"16\^3 patches"), ("remasker/16", "block 10")])
def test_torch_side_refuses_what_monai_cannot_build(variant, words):
  pytest.importorskip("monai")
  with pytest.raises(SystemExit, match=words):
    torch_unetr.bench_torch(torch_unetr.parse_args([f"--variant={variant}"]))


@pytest.mark.slow   # JAX and PyTorch train steps in subprocesses (~30 s on 2 cores)
def test_torch_unetr_compare_takes_turns():
  pytest.importorskip("monai")
  cmd = [sys.executable, "-m", "mae_jax_bench.torch_unetr", "--compare", *_SIZES, "--rounds=2",
         "--threads=1"]
  proc = subprocess.run(cmd, cwd=REPO, env=_ENV, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.strip().splitlines()
  assert [l.split(":")[0] for l in lines if l.startswith("round ")] == ["round 0", "round 1"]
  result = json.loads(lines[-1])
  for side in ("jax", "torch"):
    r = result[side]
    assert r["target"] == "segment3d" and r["framework"].startswith(side)
    assert (r["variant"], r["roi"], r["feature_size"], r["num_classes"]) == ("Ti/16", 32, 2, 2)
    assert r["volumes_per_sec"] > 0 and r["step_ms"] == min(r["step_ms_rounds"])
    assert len(r["step_ms_rounds"]) == 2 and r["flops_per_volume"] > 0
  # `allocator` and `conv` (how XLA lowers the 3-D convolutions) are knobs only the JAX side has.
  assert set(result["jax"]) <= set(result["torch"]) | {"allocator", "conv"}
  assert result["jax"]["conv"] in ("xla", "slices")
  assert result["jax"]["feature_blocks"] == [3, 6, 9, 12]
  assert result["torch"]["feature_blocks"] == [4, 7, 10, 12]
  assert result["torch"]["threads"] == 1
  # The same convolutions and matmuls; ours adds the cls token, MONAI its learned positions.
  assert result["jax"]["flops_per_volume"] == pytest.approx(
      result["torch"]["flops_per_volume"], rel=0.15)
  assert result["jax_over_torch"] == round(
      result["jax"]["volumes_per_sec"] / result["torch"]["volumes_per_sec"], 3)
