"""Two processes x 2 CPU devices on localhost are one 4-device job (jax.distributed + gloo).

The job runs the digits smoke config through the real entry point and must train as a
single process with 4 devices does: same global batch, same data, same loss; and it must
resume as one, skipping a damaged checkpoint together.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from mae_jax import distributed, experiment
from tests.helpers import REPO, damage_checkpoint, load_config

pytestmark = pytest.mark.slow   # several processes of the real entry point

# pretrain writes collective checkpoints and the export; linprobe reads the export and
# evaluates over process shards; visualize reads pretrain's checkpoint. The other stages and
# baselines repeat those code paths.
TRAINED = ("pretrain", "linprobe")
STAGES = ",".join(TRAINED + ("visualize",))
TIMEOUT_S = 540


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _start(workdir: str, *flags: str, config: str = "configs/digits.py:smoke"
           ) -> tuple[list[subprocess.Popen], list]:
  """Starts the 2-process job; `flags` override the defaults. -> (processes, their logs)."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
             JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
  port = _free_port()
  # Output goes to files, not pipes: read one process at a time, a pipe could fill up and stall
  # the other process, which would then leave both waiting on each other in a collective.
  logs = [tempfile.TemporaryFile("w+") for _ in range(4)]
  procs = [subprocess.Popen(
      [sys.executable, "-m", "mae_jax.main", f"--config={config}",
       f"--config.stages={STAGES}", "--config.baselines=", f"--workdir={workdir}",
       f"--coordinator_address=localhost:{port}", "--num_processes=2", f"--process_id={i}",
       *flags],
      cwd=REPO, env=env, stdout=logs[2 * i], stderr=logs[2 * i + 1], text=True)
      for i in range(2)]
  return procs, logs


def _output_so_far(log) -> str:
  # pread leaves the file offset alone: the child process writes through the same one.
  return os.pread(log.fileno(), 1 << 22, 0).decode(errors="replace")


def _wait(procs: list[subprocess.Popen], logs: list) -> list[subprocess.CompletedProcess]:
  """Waits for both processes (TIMEOUT_S in all); -> their exit codes and output."""
  deadline = time.monotonic() + TIMEOUT_S
  try:
    for p in procs:
      try:
        p.wait(timeout=max(deadline - time.monotonic(), 1))
      except subprocess.TimeoutExpired:
        pass   # reported below as a failed process, with its output
  finally:
    for p in procs:   # one process failing leaves the other waiting on a collective
      if p.poll() is None:
        p.kill()
        p.wait()
  results = []
  for i, p in enumerate(procs):
    out, err = logs[2 * i], logs[2 * i + 1]
    out.seek(0)
    err.seek(0)
    results.append(subprocess.CompletedProcess(p.args, p.returncode, out.read(), err.read()))
  for log in logs:
    log.close()
  return results


def _launch(workdir: str, *flags: str) -> list[subprocess.CompletedProcess]:
  """Runs the 2-process job to the end; `flags` override the defaults."""
  return _wait(*_start(workdir, *flags))


def _check_ok(results: list[subprocess.CompletedProcess]) -> None:
  for i, r in enumerate(results):
    assert r.returncode == 0, f"process {i}:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"


@pytest.fixture(scope="module")
def multi_run(tmp_path_factory):
  """(workdir, results) of one 2-process job, shared: the test that resumes it runs last."""
  workdir = str(tmp_path_factory.mktemp("multi"))
  return workdir, _launch(workdir)


def test_two_processes_train_like_one(multi_run, tmp_path):
  workdir, results = multi_run
  _check_ok(results)
  main_out, other_out = results[0].stdout, results[1].stdout
  assert "4 cpu device(s) in 2 process(es)" in main_out
  assert "[pretrain] train step 6:" in main_out and "[linprobe] eval step 6:" in main_out
  assert "[pretrain]" not in other_out and "{" not in other_out, other_out[-2000:]

  with open(os.path.join(workdir, "summary.json")) as f:
    multi = json.load(f)
  assert set(multi) == set(STAGES.split(","))
  assert 0 <= multi["linprobe"]["top1"] <= multi["linprobe"]["top5"] <= 100
  assert multi["visualize"]["png"] == os.path.join(workdir, "visualize", "reconstructions.png")
  assert os.path.getsize(multi["visualize"]["png"]) > 0
  for stage in TRAINED:
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


def test_two_processes_resume_together_past_a_damaged_checkpoint(multi_run):
  # As if the job had been killed after writing step 6 in part: both processes must find it
  # unreadable, skip it together (one of them moving it aside), resume from step 3 and finish.
  workdir, results = multi_run
  _check_ok(results)
  stage_dir = os.path.join(workdir, "pretrain")
  os.remove(os.path.join(stage_dir, "result.json"))
  shutil.rmtree(os.path.join(stage_dir, "export"))
  damage_checkpoint(os.path.join(stage_dir, "checkpoints", "6"), "truncate")
  results = _launch(workdir, "--config.stages=pretrain", "--config.pretrain.num_steps=9")
  _check_ok(results)
  out = results[0].stdout
  for r in results:
    assert "Traceback" not in r.stderr and "never retrieved" not in r.stderr, r.stderr[-3000:]
  assert re.search(r"checkpoint step 6 in \S+ is damaged \(.+\); moved to \S+_damaged/6", out), \
      out[-3000:]
  assert "[pretrain] resuming from step 3 " in out, out[-3000:]
  assert "[pretrain] train step 9:" in out, out[-3000:]
  assert "[pretrain]" not in results[1].stdout, results[1].stdout[-2000:]
  # keep_checkpoints=2: step 3 made way for the new 6 and 9.
  assert sorted(os.listdir(os.path.join(stage_dir, "checkpoints")), key=int) == ["6", "9"]
  assert os.listdir(os.path.join(stage_dir, "checkpoints_damaged")) == ["6"]
  assert os.path.exists(os.path.join(stage_dir, "result.json"))


def test_sigterm_to_one_process_stops_both_at_one_saved_step(tmp_path):
  # A spot VM or a SLURM node going away signals its own process only. JAX's preemption sync
  # manager must make both processes stop after the same step and save it collectively.
  workdir = str(tmp_path)
  procs, logs = _start(workdir, "--config.stages=pretrain", "--config.pretrain.num_steps=5000",
                       "--config.pretrain.checkpoint_every_steps=5000")
  deadline = time.monotonic() + TIMEOUT_S
  while ("[pretrain] train step 4:" not in _output_so_far(logs[0])
         and all(p.poll() is None for p in procs) and time.monotonic() < deadline):
    time.sleep(0.5)
  sent = time.monotonic()
  procs[1].send_signal(signal.SIGTERM)
  results = _wait(procs, logs)
  _check_ok(results)
  assert time.monotonic() - sent < 60
  out = results[0].stdout
  m = re.search(r"\[pretrain\] stopped by SIGTERM at step (\d+)/5000: checkpoint saved", out)
  assert m, out[-3000:]
  step = int(m.group(1))
  logged = [int(s) for s in re.findall(r"\[pretrain\] train step (\d+):", out)]
  assert logged and max(logged) <= step < 5000
  assert os.listdir(os.path.join(workdir, "pretrain", "checkpoints")) == [str(step)]
  assert not os.path.exists(os.path.join(workdir, "summary.json"))   # stopped, not finished


def test_two_processes_segment_and_score_the_whole_split(tmp_path):
  # The segment stage's evaluation reduces on each host (label maps at their own sizes) and
  # sums the confusion matrices over processes; each process writes its share of the PNGs.
  import numpy as np  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from mae_jax import confusion  # pylint: disable=g-import-not-at-top
  from mae_jax.data import seg_sources  # pylint: disable=g-import-not-at-top
  workdir = str(tmp_path)
  results = _wait(*_start(workdir, "--config.stages=segment", "--config.segment.init_from=random",
                          config="configs/digits_seg.py:smoke"))
  _check_ok(results)
  with open(os.path.join(workdir, "summary.json")) as f:
    seg = json.load(f)["segment"]
  _, truth = seg_sources.digits_seg_arrays()["test"]
  folder = os.path.join(workdir, "segment", "predictions")
  assert len(os.listdir(folder)) == len(truth)
  matrix = np.zeros((11, 11))
  for i, label in enumerate(truth):
    pred = np.asarray(Image.open(os.path.join(folder, f"test_{i:05d}.png")))
    matrix += np.asarray(confusion.confusion_matrix(pred, label, 11))
  assert confusion.scores(matrix)["miou"] == pytest.approx(seg["miou"], rel=1e-9)


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
