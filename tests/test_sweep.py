"""The sweep runner: points from sweep files, their commands, a smoke sweep, resume, failures."""

import csv
import fcntl
import json
import os
import subprocess
import sys

import pytest
from absl import flags
from ml_collections import config_flags

from mae_jax import sweep, sweep_lib, sweep_report
from mae_jax.errors import UserError
from tests.helpers import CONFIGS, REPO, load_config

SWEEPS = os.path.join(CONFIGS, "sweeps")
SWEEP_FILES = sorted(f for f in os.listdir(SWEEPS) if f.endswith(".py") and f != "__init__.py")


def _sweep_command(args, cwd=REPO, check=True):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.run([sys.executable, "-m", "mae_jax.sweep", *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=900)
  if check:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
  return proc


@pytest.mark.parametrize("config", ["digits.py", "pets.py"])
@pytest.mark.parametrize("name", [f for f in SWEEP_FILES
                                  if not f.startswith(("series", "missingness"))])
def test_shipped_image_sweeps_plan_on_real_configs(name, config):
  cfg = load_config(config)
  spec = sweep.load_sweep(os.path.join(SWEEPS, name), cfg)
  axes, names, runs = sweep.plan(cfg, spec, [], name)
  assert axes and set(names.values()) == set(runs)
  # Each axis keeps one point as the config stands (the shared baseline run) ...
  if name == "ablations.py":
    for ax in axes:
      assert sum(names[(ax.name, p.label)] == sweep_lib.BASELINE for p in ax.points) == 1, ax.name
    # ... and points that are the same run are one folder.
    assert len(runs) < sum(len(ax.points) for ax in axes)
    assert runs[names[("decoder_width", str(cfg.model.decoder_width // 4))]] == (
        ("model.decoder_width", cfg.model.decoder_width // 4),)


def test_missingness_sweep_plans_remaskers_grid_on_the_table_configs():
  for config_file in ("ames.py", "adult.py"):
    cfg = load_config(config_file)
    spec = sweep.load_sweep(os.path.join(SWEEPS, "missingness.py"), cfg)
    axes, names, runs = sweep.plan(cfg, spec, [], "missingness.py")
    assert len(axes) == 1 and len(runs) == 12      # 3 mechanisms x 4 rates, each its own run
    # The config's own point (MCAR at 30%) is its run; the others change rate or mechanism.
    assert names[("mechanism x rate", "missing_rate=0.3, mechanism=mcar")] == "baseline"
    assert dict(runs[names[("mechanism x rate", "missing_rate=0.7, mechanism=mar")]]) == {
        "data.missing_rate": 0.7, "data.mechanism": "mar"}
  assert spec.common == {"data.mar_rate": "column"}     # ReMasker's p_miss under MAR


def test_series_sweep_plans_on_the_etth1_study_and_reports_forecast_errors(tmp_path):
  cfg = load_config("etth1.py", "study")
  spec = sweep.load_sweep(os.path.join(SWEEPS, "series_masking.py"), cfg)
  axes, names, runs = sweep.plan(cfg, spec, [], "series_masking.py")
  assert dict(runs[names[("pretraining", "none")]]) == {"stages": "forecast",
                                                         "forecast.init_from": "random"}
  # The study's ratios for both maskings; its own ratio (0.75) is the pretraining axis's run.
  assert [p.label for p in axes[1].points] == [f"{k} {r}" for k in ("mae", "patchtst")
                                               for r in (0.25, 0.5, 0.75)]
  assert names[("mask_ratio", "mae 0.75")] == names[("pretraining", "mae")] == "baseline"
  assert names[("mask_ratio", "patchtst 0.75")] == names[("pretraining", "patchtst")]
  assert dict(runs[names[("recurrent", "gru")]]) == {"stages": "forecast",
                                                     "forecast.model": "gru"}
  assert len(runs) == 10
  # A run's forecast errors become the table's columns; no empty accuracy columns.
  run_dir = tmp_path / "run"
  run_dir.mkdir()
  (run_dir / "summary.json").write_text(json.dumps({"forecast": {"mse": 0.5, "mae": 0.25}}))
  metrics = sweep_report.run_metrics(str(run_dir))
  assert metrics == {"forecast_mse": 0.5, "forecast_mae": 0.25}
  results = {n: {"overrides": list(o), "seeds": [metrics], "failed": {}, "missing": []}
             for n, o in runs.items()}
  sweep_report.write(str(tmp_path), axes, names, results, "# header\n", "ett:/d/ETTh1.csv")
  table = (tmp_path / "sweep.md").read_text()
  assert "forecast MSE" in table and "0.5000" in table and "top-1" not in table
  assert (tmp_path / "sweep.png").exists()
  # The study's Table 2 closes the table.
  assert "### the TinyImageNet MAE study, Table 2" in table.split("## recurrent")[1]


def test_points_and_their_flags_parse_back_to_the_same_values():
  cfg = load_config("digits.py")
  spec = sweep.load_sweep(os.path.join(SWEEPS, "ablations.py"), cfg)
  _, _, runs = sweep.plan(cfg, spec, [], "ablations.py")
  for name, overrides in runs.items():
    argv = ["prog", f"--config={os.path.join(CONFIGS, 'digits.py')}",
            *(sweep_lib.flag(f, v) for f, v in overrides)]
    fv = flags.FlagValues()
    holder = config_flags.DEFINE_config_file("config", None, flag_values=fv, lock_config=True,
                                             sys_argv=argv)
    fv(argv)
    for field, value in overrides:
      assert sweep_lib.get_field(holder.value, field) == value, (name, field)
    assert sweep_lib.effective(holder.value, overrides) == ()


def test_grid_axis_and_run_names():
  ax = sweep_lib.grid("g", {"model.mask_ratio": [0.5, 0.75], "model.mask_sampling": ["random",
                                                                                     "block"]})
  assert [p.label for p in ax.points][:2] == ["mask_ratio=0.5, mask_sampling=random",
                                              "mask_ratio=0.5, mask_sampling=block"]
  assert [p.x for p in ax.points] == [0.5, 0.5, 0.75, 0.75]
  assert {p.series for p in ax.points} == {"mask_sampling=random", "mask_sampling=block"}
  cfg = load_config("digits.py")
  names = {sweep_lib.run_name(sweep_lib.effective(cfg, p.overrides)) for p in ax.points}
  assert names == {"model.mask_ratio=0.5", "model.mask_ratio=0.5__model.mask_sampling=block",
                   "baseline", "model.mask_sampling=block"}


def test_bad_sweeps_are_one_line_errors(tmp_path):
  cfg = load_config("digits.py")
  bad_field = sweep_lib.Sweep([sweep_lib.axis("x", "model.mask_ratioo", [0.5])])
  with pytest.raises(UserError, match="axis 'x', point '0.5': unknown config field "
                                      "'model.mask_ratioo'"):
    sweep.plan(cfg, bad_field, [], "f.py")
  bad_type = sweep_lib.Sweep([sweep_lib.axis("x", "model.mask_ratio", ["high"])])
  with pytest.raises(UserError, match="of another type"):
    sweep.plan(cfg, bad_type, [], "f.py")
  with pytest.raises(UserError, match="--axes: nonesuch not in f.py; its axes: x"):
    sweep.plan(cfg, bad_type, ["nonesuch"], "f.py")
  proc = _sweep_command(["--config=digits", "--sweep=nonesuch", f"--workdir={tmp_path}"],
                        check=False)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert "sweep file" in proc.stderr and "shipped sweeps: ablations, labels, missingness, seg_labels, series_masking" in \
      proc.stderr


def test_dry_run_prints_every_run_and_seed(tmp_path):
  out = _sweep_command(["--config=digits", "--sweep=ablations", "--axes=mask_ratio",
                        "--seeds=0,1", f"--workdir={tmp_path}", "--dry_run",
                        "--config.pretrain.num_epochs=2"]).stdout.splitlines()
  assert len(out) == 8     # 4 ratios (0.75 the config's own: "baseline") x 2 seeds
  assert all("--config.pretrain.num_epochs=2" in line and "--config.baselines=" in line
             for line in out)
  assert sum("--config.model.mask_ratio=0.9" in line for line in out) == 2
  assert f"--workdir={tmp_path}/baseline/seed1" in "\n".join(out)
  assert not os.listdir(tmp_path)


def test_a_failed_run_is_reported_and_the_others_stay(tmp_path):
  # One run finished before (its summary.json), one that cannot run (grid masking at 0.5).
  (tmp_path / "sweep.py").write_text(
      "from mae_jax import sweep_lib\n"
      "def get_sweep(config):\n"
      "  return sweep_lib.Sweep([sweep_lib.axis('sampling', 'model.mask_sampling',"
      " ['random', 'grid'])])\n")
  done = tmp_path / "out" / "baseline" / "seed0"
  done.mkdir(parents=True)
  (done / "summary.json").write_text(json.dumps(
      {"pretrain": {"loss": 0.5, "train_seconds": 60.0}, "linprobe": {"top1": 80.0},
       "finetune": {"top1": 90.0}}))
  proc = _sweep_command(["--config=digits:smoke", f"--sweep={tmp_path / 'sweep.py'}",
                         f"--workdir={tmp_path / 'out'}", "--config.model.mask_ratio=0.5"],
                        check=False)
  assert proc.returncode == 1 and "1 of 2 runs failed" in proc.stderr, proc.stderr[-3000:]
  assert "1 finished before" in proc.stdout
  rows = list(csv.DictReader(open(tmp_path / "out" / "sweep.csv")))
  assert [r["run"] for r in rows] == ["baseline", "model.mask_sampling=grid"]
  assert float(rows[0]["linprobe_top1"]) == 80.0 and rows[0]["seeds_done"] == "1"
  assert rows[1]["seeds_done"] == "0" and "grid sampling keeps one patch" in rows[1]["failed"]
  md = (tmp_path / "out" / "sweep.md").read_text()
  assert "seed 0 failed: config.model.mask_sampling: grid sampling" in md


@pytest.mark.slow
def test_smoke_sweep_writes_table_csv_plot_and_resumes(tmp_path):
  out = tmp_path / "sweep"
  log = _sweep_command(["--config=digits:smoke", "--sweep=smoke", f"--workdir={out}",
                        "--parallel=2"]).stdout
  assert "2 runs x 1 seed(s) = 2" in log and log.count(": done in") == 2
  rows = list(csv.DictReader(open(out / "sweep.csv")))
  assert [(r["value"], r["run"]) for r in rows] == [("random", "baseline"),
                                                   ("grid", "model.mask_sampling=grid")]
  for r in rows:
    assert 0 <= float(r["linprobe_top1"]) <= 100 and 0 <= float(r["finetune_top1"]) <= 100
    assert float(r["pretrain_loss"]) > 0 and float(r["images_per_sec"]) > 0
  assert (out / "sweep.png").stat().st_size > 0
  assert "| grid | model.mask_sampling=grid |" in (out / "sweep.md").read_text()
  summary = json.loads((out / "baseline" / "seed0" / "summary.json").read_text())
  assert "baselines" not in summary      # the sweep's common override

  # Half-finished: the grid run lost its fine-tune. The rerun starts only that run, which
  # keeps its pretraining and linear probe and redoes the fine-tune.
  grid = out / "model.mask_sampling=grid" / "seed0"
  kept = (grid / "pretrain" / "result.json").stat().st_mtime_ns
  (grid / "summary.json").unlink()
  for f in (grid / "finetune").iterdir():
    if f.is_file():
      f.unlink()
  subprocess.run(["rm", "-rf", str(grid / "finetune" / "checkpoints")], check=True)
  with open(out / "sweep.lock") as lock:      # a second sweep in the same folder is refused
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    proc = _sweep_command(["--config=digits:smoke", "--sweep=smoke", f"--workdir={out}"],
                          check=False)
    assert proc.returncode == 1 and "another sweep is running" in proc.stderr
  log = _sweep_command(["--config=digits:smoke", "--sweep=smoke", f"--workdir={out}"]).stdout
  assert "1 finished before" in log and log.count(": started") == 1
  assert (grid / "pretrain" / "result.json").stat().st_mtime_ns == kept
  assert (grid / "finetune" / "result.json").exists() and (grid / "summary.json").exists()
  run_log = (grid / "log.txt").read_text()
  assert "[pretrain] already finished" in run_log and "[linprobe] already finished" in run_log


def test_label_sweeps_report_both_arms_and_their_paired_difference(tmp_path):
  cfg = load_config("fashion_mnist.py", "study")
  spec = sweep.load_sweep(os.path.join(SWEEPS, "labels.py"), cfg)
  axes, names, runs = sweep.plan(cfg, spec, [], "labels.py")
  assert [dict(runs[names[("labels", p.label)]]) for p in axes[0].points] == [
      {"data.labels": 0.01}, {"data.labels": 0.1}, {}]
  results = {}
  for i, name in enumerate(runs):
    per_seed = []
    for seed in range(3):
      run_dir = tmp_path / f"{name}_{seed}"
      run_dir.mkdir()
      ours, theirs = 70.0 + i + seed, 60.0 + i
      (run_dir / "summary.json").write_text(json.dumps({
          "finetune": {"top1": ours, "train_examples": 600 * 10**i},
          "baselines": {"finetune_random_init": {"top1": theirs, "train_examples": 600}}}))
      per_seed.append(sweep_report.run_metrics(str(run_dir)))
    results[name] = {"overrides": list(runs[name]), "seeds": per_seed, "failed": {},
                     "missing": []}
  assert per_seed[2]["finetune_gain"] == 12.0 and per_seed[2]["train_examples"] == 60000
  sweep_report.write(str(tmp_path), axes, names, results, "# header\n")
  table = (tmp_path / "sweep.md").read_text()
  # Seeds 0, 1, 2: gains 10, 11, 12 at the first point -> +11.00 ± 1.00.
  assert "fine-tune: pretrained - random (paired)" in table and "+11.00 ± 1.00" in table


@pytest.mark.slow
def test_etth1_study_sweep_runs_every_point_end_to_end(tmp_path):
  # The study's protocol through the sweep command, smoke-sized, on a short file in ETT's
  # layout: every point (no pretraining, both maskings at each ratio, the RNNs) finishes.
  from tests.test_series_data import write_series  # pylint: disable=g-import-not-at-top
  path = tmp_path / "ETTh1.csv"
  write_series(path, 1500)
  out = tmp_path / "sweep"
  _sweep_command(["--config=etth1:study,smoke", "--sweep=series_masking", f"--workdir={out}",
                  f"--config.data.dataset=ett:{path}", "--seeds=0", "--parallel=2"])
  rows = list(csv.DictReader(open(out / "sweep.csv")))
  assert [(r["axis"], r["value"]) for r in rows] == [
      ("pretraining", "none"), ("pretraining", "mae"), ("pretraining", "patchtst"),
      *(("mask_ratio", f"{k} {r}") for k in ("mae", "patchtst") for r in (0.25, 0.5, 0.75)),
      ("recurrent", "rnn"), ("recurrent", "lstm"), ("recurrent", "gru")]
  for r in rows:
    assert r["seeds_done"] == "1" and not r["failed"], r
    assert float(r["forecast_mse"]) > 0 and float(r["forecast_mae"]) > 0, r
  md = (out / "sweep.md").read_text()
  assert "| gru | stages=forecast__forecast.model=gru |" in md and "Table 2" in md
  # Each point is the study's run: 24 lags -> the next OT, its test windows scored.
  summary = json.loads((out / "baseline" / "seed0" / "summary.json").read_text())
  assert summary["forecast"]["lookback"] == 24 and summary["forecast"]["horizon"] == 1
  assert summary["forecast"]["variables"] == 1 and summary["forecast"]["test_windows"] == 150
  assert (out / "baseline" / "seed0" / "forecast" / "forecast_series.png").exists()
