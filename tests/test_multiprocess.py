"""Two processes x 2 CPU devices on localhost are one 4-device job (jax.distributed + gloo).

The job runs the digits smoke config through the real entry point and must train as a
single process with 4 devices does: same global batch, same data, same loss.
"""

import json
import os
import socket
import subprocess
import sys

import pytest

from mae_jax import distributed, experiment
from tests.helpers import REPO, load_config

# pretrain writes collective checkpoints and the export; linprobe reads the export and
# evaluates over process shards. The other stages and baselines repeat those code paths.
STAGES = "pretrain,linprobe"
TIMEOUT_S = 540


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _launch(workdir: str, port: int) -> list[subprocess.CompletedProcess]:
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
             JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
  procs = [subprocess.Popen(
      [sys.executable, "-m", "mae_jax.main", "--config=configs/digits.py:smoke",
       f"--config.stages={STAGES}", "--config.baselines=", f"--workdir={workdir}",
       f"--coordinator_address=localhost:{port}", "--num_processes=2", f"--process_id={i}"],
      cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for i in range(2)]
  results = []
  try:
    for p in procs:
      out, err = p.communicate(timeout=TIMEOUT_S)
      results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
  finally:
    for p in procs:   # one process failing leaves the other waiting on a collective
      if p.poll() is None:
        p.kill()
        p.wait()
  return results


def test_two_processes_train_like_one(tmp_path):
  workdir = str(tmp_path / "multi")
  results = _launch(workdir, _free_port())
  for i, r in enumerate(results):
    assert r.returncode == 0, f"process {i}:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
  main_out, other_out = results[0].stdout, results[1].stdout
  assert "4 cpu device(s) in 2 process(es)" in main_out
  assert "[pretrain] train step 6:" in main_out and "[linprobe] eval step 6:" in main_out
  assert "[pretrain]" not in other_out and "{" not in other_out, other_out[-2000:]

  with open(os.path.join(workdir, "summary.json")) as f:
    multi = json.load(f)
  assert set(multi) == set(STAGES.split(","))
  assert 0 <= multi["linprobe"]["top1"] <= multi["linprobe"]["top5"] <= 100
  for stage in multi:
    with open(os.path.join(workdir, stage, "metrics.jsonl")) as f:
      steps = [json.loads(line)["step"] for line in f if '"split": "train"' in line]
    assert steps == [2, 4, 6], f"{stage}: one writer expected, got steps {steps}"
  assert os.path.exists(os.path.join(workdir, "pretrain", "export", "model.json"))
  assert sorted(os.listdir(os.path.join(workdir, "pretrain", "checkpoints"))) == ["3", "6"]

  # The reference: one process with the 4 fake devices of conftest, in this process.
  config = load_config("digits.py", "smoke")
  config.stages, config.baselines = "pretrain", ""
  single = experiment.run(config, str(tmp_path / "single"))
  assert multi["pretrain"]["loss"] == pytest.approx(single["pretrain"]["loss"], rel=0.05)


def test_single_process_is_the_default(monkeypatch):
  for var in ("SLURM_NTASKS", "SLURM_NPROCS", "SLURM_PROCID"):
    monkeypatch.delenv(var, raising=False)
  if distributed.cluster_detected() is None:   # always so, unless the tests run on a TPU VM
    assert not distributed.initialize("auto")
  assert not distributed.initialize("off", "localhost:1", 2, 0)
  with pytest.raises(ValueError, match="distributed mode"):
    distributed.initialize("yes")


def test_slurm_job_with_several_tasks_is_detected(monkeypatch):
  monkeypatch.setenv("SLURM_PROCID", "3")
  monkeypatch.setenv("SLURM_NTASKS", "16")
  assert distributed.cluster_detected() == "SLURM (16 tasks)"
  monkeypatch.setenv("SLURM_NTASKS", "1")   # a one-task job is a plain single-process run
  assert distributed.cluster_detected() in (None, "Cloud TPU VM")
