"""Preemption safety and refusals, through the real entry point in subprocesses.

Each guarantee of README's "Reliability" section has a test here that fails without it:
SIGKILL + rerun equals an uninterrupted run, SIGTERM saves the current step and exits 0,
NaN stops the run and is never checkpointed, a damaged newest checkpoint is skipped, and
every bad input is one line on stderr with a non-zero exit and no traceback.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import traverse_util

from mae_jax import checkpoint, weights
from tests.helpers import REPO, damage_checkpoint

pytestmark = pytest.mark.slow   # the real entry point, killed and resumed

STEPS = 40
# digits:smoke pretrain only (mu/4, batch 16): a few ms a step, so a run is mostly start-up.
BASE = ["-m", "mae_jax.main", "--config=configs/digits.py:smoke", "--config.stages=pretrain",
        "--config.baselines=", f"--config.pretrain.num_steps={STEPS}",
        "--config.pretrain.checkpoint_every_steps=4", "--config.pretrain.keep_checkpoints=3",
        "--config.pretrain.log_every_steps=1"]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")   # conftest's 4 fake devices are inherited


def _cmd(workdir, *extra):
  return [sys.executable, *BASE, f"--workdir={workdir}", *extra]


def _run(workdir, *extra, expect_rc=0):
  proc = subprocess.run(_cmd(workdir, *extra), cwd=REPO, env=ENV, capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == expect_rc, proc.stdout[-3000:] + proc.stderr[-3000:]
  return proc


def _start(workdir, *extra):
  return subprocess.Popen(_cmd(workdir, *extra), cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def _wait_for_step(proc, at_least):
  """Reads the run's output until it logs a train step >= `at_least`; returns that step."""
  seen = []
  for line in proc.stdout:
    seen.append(line)
    m = re.match(r"\[pretrain\] train step (\d+):", line)
    if m and int(m.group(1)) >= at_least:
      return int(m.group(1))
  raise AssertionError("the run ended before step %d:\n%s" % (at_least, "".join(seen[-30:])))


def _export(workdir):
  params, _ = weights.restore_export(os.path.join(workdir, "pretrain", "export"))
  return traverse_util.flatten_dict(params, sep="/")


def _assert_same_params(a, b):
  assert a.keys() == b.keys()
  worst = max(float(np.max(np.abs(a[k] - b[k]))) for k in a)
  assert worst <= 1e-6, f"max |difference| {worst}"


def _ckpt_dir(workdir):
  return os.path.join(workdir, "pretrain", "checkpoints")


def _steps_on_disk(workdir):
  return sorted(int(d) for d in os.listdir(_ckpt_dir(workdir)) if d.isdigit())


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("uninterrupted"))
  _run(workdir)
  return _export(workdir)


def test_sigkill_then_rerun_equals_an_uninterrupted_run(uninterrupted, tmp_path):
  workdir = str(tmp_path)
  proc = _start(workdir)
  _wait_for_step(proc, 14)
  proc.kill()
  proc.wait()
  assert not os.path.exists(os.path.join(workdir, "pretrain", "result.json"))
  assert _steps_on_disk(workdir) and max(_steps_on_disk(workdir)) < STEPS
  out = _run(workdir).stdout
  assert re.search(r"\[pretrain\] resuming from step \d+", out), out[-2000:]
  _assert_same_params(_export(workdir), uninterrupted)


def test_sigterm_saves_the_current_step_exits_0_and_the_rerun_continues(uninterrupted, tmp_path):
  workdir = str(tmp_path)
  proc = _start(workdir)
  _wait_for_step(proc, 10)
  sent = time.time()
  proc.send_signal(signal.SIGTERM)
  out, _ = proc.communicate(timeout=120)
  assert proc.returncode == 0, out[-3000:]
  assert time.time() - sent < 30
  m = re.search(r"stopped by SIGTERM at step (\d+)/", out)
  assert m, out[-2000:]
  stopped = int(m.group(1))
  assert stopped < STEPS and stopped in _steps_on_disk(workdir)
  out = _run(workdir).stdout
  assert f"resuming from step {stopped} " in out
  _assert_same_params(_export(workdir), uninterrupted)


def test_non_finite_loss_stops_with_the_step_and_is_never_checkpointed(tmp_path):
  workdir = str(tmp_path)
  proc = _run(workdir, "--config.pretrain.base_lr=1e35",
              "--config.pretrain.checkpoint_every_steps=1", expect_rc=1)
  assert "Traceback" not in proc.stderr
  m = re.search(r"mae_jax: error: \[pretrain\] non-finite training at step (\d+) .*the last good "
                r"checkpoint is step (\d+)", proc.stderr)
  assert m, proc.stderr[-2000:]
  bad, good = int(m.group(1)), int(m.group(2))
  assert good == bad - 1
  saved = _steps_on_disk(workdir)
  assert saved and max(saved) == good
  with ocp.StandardCheckpointer() as ckptr:
    for step in saved:
      state = ckptr.restore(os.path.join(_ckpt_dir(workdir), str(step), "default"))
      leaves = traverse_util.flatten_dict(state["params"], sep="/").values()
      assert all(np.isfinite(np.asarray(x)).all() for x in leaves), f"step {step} holds NaN/inf"


def test_damaged_newest_checkpoints_are_reported_and_skipped(tmp_path):
  workdir = str(tmp_path)
  _run(workdir, "--config.pretrain.num_steps=12")
  assert _steps_on_disk(workdir) == [4, 8, 12]
  os.remove(os.path.join(workdir, "pretrain", "result.json"))   # as if killed after the save
  shutil.rmtree(os.path.join(workdir, "pretrain", "export"))
  damage_checkpoint(os.path.join(_ckpt_dir(workdir), "12"), "truncate")   # partial writes
  damage_checkpoint(os.path.join(_ckpt_dir(workdir), "8"), "delete")      # lost files
  proc = _run(workdir, "--config.pretrain.num_steps=16")
  out = proc.stdout
  # Our report is the only word on it: none of the tracebacks that Orbax's aborted reads leave.
  assert "Traceback" not in proc.stderr and "never retrieved" not in proc.stderr, \
      proc.stderr[-3000:]
  for step in (12, 8):
    assert re.search(rf"checkpoint step {step} in \S+ is damaged \(.+\); moved to "
                     rf"\S+_damaged/{step}", out), out[-3000:]
  assert "resuming from step 4 " in out
  assert os.path.exists(os.path.join(workdir, "pretrain", "result.json"))
  assert _steps_on_disk(workdir)[-1] == 16


BAD_INPUTS = {
    "image size": (["--config.data.image_size=30"], "config.data.image_size=30 is not a positive "
                   "multiple of the patch size 4"),
    "mask ratio": (["--config.model.mask_ratio=1.0"], "config.model.mask_ratio must be in (0, 1)"),
    "batch vs devices": (["--config.pretrain.batch_size=6"], "config.pretrain.batch_size=6 (the "
                         "global batch) is not a positive multiple of the 4 devices"),
    "dataset": (["--config.data.dataset=no_such_set"], "config.data.dataset: unknown dataset "
                "'no_such_set'"),
    "variant": (["--config.model.variant=Q/4"],
                "config.model.variant: unknown model variant 'Q/4'"),
    "stage": (["--config.stages=pretrain,probe"], "config.stages: unknown stage 'probe'"),
    "init_from missing": (["--config.stages=linprobe", "--config.linprobe.init_from=/no/such/dir"],
                          "config.linprobe.init_from='/no/such/dir' is not an exported encoder"),
    "init_from misfit": (["--config.stages=finetune", "--config.finetune.init_from={export}"],
                         "does not fit config.model.variant='mu/4': width 128 vs 32"),
    "unknown field": (["--config.model.no_such_field=1"],
                      "unknown config field '--config.model.no_such_field'"),
    "config file": (["--config=configs/no_such_config.py"],
                    "config file 'configs/no_such_config.py' does not exist"),
    "config arg": (["--config=configs/digits.py:no_such_arg"], "unknown config argument "
                   "'no_such_arg'"),
}


def test_every_bad_input_is_one_clear_line_without_traceback(tmp_path):
  # An export of another architecture (mini/4, width 128) for the "does not fit" case.
  export = str(tmp_path / "mini_export")
  checkpoint.export_params(export, {"w": np.zeros(1)}, dict(
      variant="mini/4", width=128, depth=4, num_heads=4, patch_size=4, mlp_ratio=4.0,
      image_size=32))
  procs = {}
  for name, (args, _) in BAD_INPUTS.items():   # all at once: each is mostly Python start-up
    args = [a.format(export=export) for a in args]
    procs[name] = subprocess.Popen(_cmd(str(tmp_path / name.replace(" ", "_")), *args), cwd=REPO,
                                   env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
  for name, proc in procs.items():
    out, err = proc.communicate(timeout=300)
    expected = BAD_INPUTS[name][1]
    assert proc.returncode != 0, name
    assert "Traceback" not in err + out, f"{name}: {err[-2000:]}"
    errors = [l for l in err.splitlines() if l.startswith("mae_jax: error:")]
    assert len(errors) == 1 and expected in errors[0], f"{name}: {err[-2000:]}"
    assert "compil" not in out.lower() and "train step" not in out, name
