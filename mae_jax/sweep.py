"""mae-jax-sweep: one config at many points of its design choices, then a table and a plot.

  mae-jax-sweep --config=configs/digits.py --sweep=configs/sweeps/ablations.py --workdir=DIR \\
      [--seeds=0,1,2] [--axes=mask_sampling,mask_ratio] [--parallel=N] [--config.x=y ...]

(`python -m mae_jax.sweep` is the same; --config and --sweep also take shipped files' bare
names: --config=digits --sweep=ablations.) A sweep file (sweep_lib.py) lists axes of
`--config.x=y` overrides. Each point and seed is a normal `mae-jax` run of the config in
DIR/<run>/seed<k>, in a process of its own, so it resumes and skips finished stages as any run
does, and a sweep stopped half-way continues where it was when the same command runs again
(runs with a summary.json are not started again). A run that fails is reported in the table and
the others go on. At the end, and after every finished run: DIR/sweep.md, sweep.csv, sweep.png
(sweep_report.py).

--parallel=N runs N processes at once; with NVIDIA GPUs, each gets its share of them
(CUDA_VISIBLE_DEVICES). On one CPU host or one TPU host the processes would share the same
devices: leave it at 1 there.
"""

import dataclasses
import datetime
import fcntl
import importlib.util
import os
import shlex
import signal
import subprocess
import sys
import time
from typing import Any

from absl import app, flags
from ml_collections import config_flags

from mae_jax import cli_args, config_lib, sweep_lib, sweep_report
from mae_jax.errors import UserError

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (configs/*.py[:arg]) that the sweep varies.",
    lock_config=True)
_SWEEP = flags.DEFINE_string("sweep", None, "Sweep file (configs/sweeps/*.py) or its bare name.")
_WORKDIR = flags.DEFINE_string("workdir", None,
                                "Local directory of the sweep: a folder per run, logs, tables.")
_SEEDS = flags.DEFINE_list("seeds", ["0"], "config.seed values: every point runs at each.")
_AXES = flags.DEFINE_list("axes", [], "Run only these axes of the sweep file (default: all).")
_PARALLEL = flags.DEFINE_integer("parallel", 1, "Runs at once (separate processes).",
                                 lower_bound=1)
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print each run's command, run nothing.")
flags.mark_flags_as_required(["config", "sweep", "workdir"])


@dataclasses.dataclass
class Job:
  run: str                  # the run's folder name (sweep_lib.run_name)
  seed: int
  command: list[str]
  directory: str
  process: subprocess.Popen | None = None
  started: float = 0.0
  outcome: str = ""         # "done", "skipped" (finished before), "failed", or "" (not run)
  message: str = ""


def load_sweep(path: str, config: Any) -> sweep_lib.Sweep:
  """The Sweep that `get_sweep(config)` of the file at `path` returns."""
  if not os.path.isfile(path):
    raise UserError(f"--sweep: sweep file {path!r} does not exist (a path, or one of the shipped "
                    f"sweeps: {', '.join(config_lib.shipped_configs('sweeps'))})")
  spec = importlib.util.spec_from_file_location("mae_jax_sweep_file", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, "get_sweep"):
    raise UserError(f"--sweep: {path} defines no get_sweep(config)")
  sweep = module.get_sweep(config)
  if not isinstance(sweep, sweep_lib.Sweep):
    raise UserError(f"--sweep: {path}: get_sweep must return a sweep_lib.Sweep")
  return sweep


def plan(config: Any, sweep: sweep_lib.Sweep, axes: list[str], source: str
         ) -> tuple[list[sweep_lib.Axis], dict[tuple[str, str], str],
                    dict[str, tuple[tuple[str, Any], ...]]]:
  """-> (the axes to run, (axis, label) -> run name, run name -> effective overrides).

  Points of several axes that change the config in the same way are one run.
  """
  known = [a.name for a in sweep.axes]
  unknown = [a for a in axes if a not in known]
  if unknown:
    raise UserError(f"--axes: {', '.join(unknown)} not in {source}; its axes: {', '.join(known)}")
  chosen = [a for a in sweep.axes if not axes or a.name in axes]
  names, runs = {}, {}
  for ax in chosen:
    for point in ax.points:
      try:
        overrides = sweep_lib.effective(config, point.overrides)
      except UserError as err:
        raise UserError(f"{source}: axis {ax.name!r}, point {point.label!r}: {err}") from None
      name = sweep_lib.run_name(overrides)
      names[(ax.name, point.label)] = name
      runs[name] = overrides
  return chosen, names, runs


def _gpu_count() -> int:
  try:
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
  except (OSError, subprocess.SubprocessError):
    return 0
  return sum(line.startswith("GPU ") for line in out.stdout.splitlines()) if out.returncode == 0 \
      else 0


def _slot_env(slot: int, slots: int, gpus: int) -> dict[str, str]:
  env = dict(os.environ)
  if slots > 1 and gpus >= slots:
    share = gpus // slots
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(slot * share + i) for i in range(share))
  return env


def _failure(log_path: str) -> str:
  """The one line a failed run ended with (mae_jax's own error line when there is one)."""
  try:
    with open(log_path, errors="replace") as f:
      lines = [l.strip() for l in f if l.strip()]
  except OSError:
    return "no log"
  errors = [l for l in lines if l.startswith("mae_jax: error:")]
  line = (errors or lines or ["exited without output"])[-1]
  return line.removeprefix("mae_jax: error: ")[:300]


def _echo(text: str) -> None:
  print(f"[sweep] {text}", flush=True)


class Runner:
  """Runs the jobs, `parallel` at a time; SIGTERM stops the running ones (they checkpoint)."""

  def __init__(self, jobs: list[Job], parallel: int, on_finish):
    self.jobs, self.parallel, self.on_finish = jobs, parallel, on_finish
    self.stopping = False
    self.gpus = _gpu_count() if parallel > 1 else 0

  def _stop(self, signum, frame) -> None:  # pylint: disable=unused-argument
    self.stopping = True
    for job in self.jobs:
      if job.process is not None and job.process.poll() is None:
        job.process.send_signal(signal.SIGTERM)

  def run(self) -> None:
    previous = signal.signal(signal.SIGTERM, self._stop)
    try:
      self._loop()
    finally:
      signal.signal(signal.SIGTERM, previous)

  def _loop(self) -> None:
    todo = [j for j in self.jobs if not j.outcome]
    free = list(range(self.parallel))
    running: dict[int, Job] = {}
    total = len(self.jobs)
    while (todo and not self.stopping) or running:
      while todo and free and not self.stopping:
        job, slot = todo.pop(0), free.pop(0)
        os.makedirs(job.directory, exist_ok=True)
        log = open(os.path.join(job.directory, "log.txt"), "a")  # noqa: SIM115 (the child's)
        job.process = subprocess.Popen(job.command, stdout=log, stderr=subprocess.STDOUT,
                                       env=_slot_env(slot, self.parallel, self.gpus))
        log.close()
        job.started = time.time()
        running[slot] = job
        _echo(f"{self._index(job)}/{total} {job.run} seed {job.seed}: started "
              f"(log: {os.path.join(job.directory, 'log.txt')})")
      time.sleep(0.5)
      for slot, job in list(running.items()):
        code = job.process.poll()
        if code is None:
          continue
        del running[slot]
        free.append(slot)
        minutes = (time.time() - job.started) / 60
        if os.path.exists(os.path.join(job.directory, "summary.json")):
          job.outcome = "done"
          _echo(f"{self._index(job)}/{total} {job.run} seed {job.seed}: done in "
                f"{minutes:.1f} min")
        elif self.stopping:
          _echo(f"{job.run} seed {job.seed}: stopped; it resumes when the sweep runs again")
        else:
          job.outcome, job.message = "failed", _failure(os.path.join(job.directory, "log.txt"))
          _echo(f"{self._index(job)}/{total} {job.run} seed {job.seed}: FAILED after "
                f"{minutes:.1f} min: {job.message}")
        self.on_finish()

  def _index(self, job: Job) -> int:
    return self.jobs.index(job) + 1


def collect(jobs: list[Job], runs: dict[str, tuple]) -> dict[str, dict[str, Any]]:
  """run name -> {"overrides", "seeds": per-seed metrics, "failed": {seed: msg}, "missing"}."""
  out = {name: {"overrides": overrides, "seeds": [], "failed": {}, "missing": []}
         for name, overrides in runs.items()}
  for job in jobs:
    r = out[job.run]
    if os.path.exists(os.path.join(job.directory, "summary.json")):
      r["seeds"].append(sweep_report.run_metrics(job.directory))
    elif job.outcome == "failed":
      r["failed"][job.seed] = job.message
    else:
      r["missing"].append(job.seed)
  return out


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    seeds = [int(s) for s in _SEEDS.value]
  except ValueError:
    raise app.UsageError(f"--seeds: integers separated by commas, got {_SEEDS.value}") from None
  config = _CONFIG.value
  workdir = os.path.abspath(_WORKDIR.value)
  sweep_path = _SWEEP.value.split(":")[0]
  try:
    sweep = load_sweep(sweep_path, config)
    axes, names, runs = plan(config, sweep, _AXES.value, sweep_path)
    common = [sweep_lib.flag(f, v) for f, v in sweep_lib.effective(config, sweep.common.items())]
  except UserError as err:
    sys.exit(f"mae_jax: error: {err}")

  # The children get the command line's config and overrides, then the sweep's.
  config_arg = next(a for a in sys.argv if a.startswith("--config=") or a == "--config")
  config_spec = (config_arg.split("=", 1)[1] if "=" in config_arg
                 else sys.argv[sys.argv.index(config_arg) + 1])
  user = [a for a in sys.argv[1:] if a.startswith("--config.")]
  jobs = []
  # Seed by seed: a sweep cut short has every point at the first seeds.
  for seed in seeds:
    for name, overrides in runs.items():
      directory = os.path.join(workdir, name, f"seed{seed}")
      command = [sys.executable, "-m", "mae_jax.main", f"--config={config_spec}",
                 f"--workdir={directory}", *user, *common,
                 *(sweep_lib.flag(f, v) for f, v in overrides), f"--config.seed={seed}"]
      done = os.path.exists(os.path.join(directory, "summary.json"))
      jobs.append(Job(name, seed, command, directory, outcome="skipped" if done else ""))
  if _DRY_RUN.value:
    for job in jobs:
      print(shlex.join(job.command))
    return

  def header() -> str:
    return (f"# Sweep: {config_spec}, {os.path.basename(sweep_path)}\n\n"
            f"Written {datetime.datetime.now():%Y-%m-%d %H:%M}. Seeds {','.join(map(str, seeds))}"
            f"; each figure is the mean over the seeds that finished, ± the standard deviation "
            f"across seeds (ddof 1). A difference smaller than that spread does not rank two "
            f"choices. Run folders: {workdir}/<run>/seed<k>.\n\n"
            f"Command: `mae-jax-sweep {shlex.join(sys.argv[1:])}`\n")

  def write() -> list[str]:
    return sweep_report.write(workdir, axes, names, collect(jobs, runs), header(),
                              config.data.dataset)

  os.makedirs(workdir, exist_ok=True)
  # One sweep per folder: two would start the same runs twice. The lock goes with the process.
  lock = open(os.path.join(workdir, "sweep.lock"), "w")  # noqa: SIM115 (held until exit)
  try:
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError:
    sys.exit(f"mae_jax: error: --workdir: another sweep is running in {workdir}")
  finished = sum(1 for j in jobs if j.outcome == "skipped")
  _echo(f"{len(runs)} runs x {len(seeds)} seed(s) = {len(jobs)} in {workdir}"
        + (f"; {finished} finished before" if finished else ""))
  runner = Runner(jobs, _PARALLEL.value, write)
  runner.run()
  written = write()
  failed = [j for j in jobs if j.outcome == "failed"]
  _echo(f"wrote {', '.join(os.path.join(workdir, w) for w in written)}")
  if runner.stopping:
    sys.exit("[sweep] stopped by SIGTERM; run the same command to continue")
  if failed:
    sys.exit(f"[sweep] {len(failed)} of {len(jobs)} runs failed (see the table)")


def run(argv: list[str]) -> None:
  cli_args.show_flags_in_help(__name__, argv[0])
  argv = cli_args.resolve_config_flags(cli_args.resolve_config_flags(argv), "sweep", "sweeps")
  sys.argv = argv
  app.run(main, argv=argv, flags_parser=cli_args.parse_flags)


if __name__ == "__main__":
  run(sys.argv)
