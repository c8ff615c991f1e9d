"""Published figures: which run each set applies to, and their units."""

import pytest

from mae_jax import references, report


@pytest.mark.parametrize("dataset, base", [
    ("tiny_imagenet", "tiny_imagenet"),
    ("tfds:imagenet2012/subset:5.1.0", "imagenet2012"),
    ("fashion_mnist:/usr/share/datasets/fashion-mnist", "fashion_mnist"),
    ("ade20k:/data/ADE", "ade20k"),
    ("btcv:/data/BTCV", "btcv"),
    ("ETTh1", "ETTh1"),
    ("ett:/data/ETTh1.csv", "ETTh1"),
    ("housing", "housing"),
    ("csv:/data/housing.csv", "housing"),
])
def test_base_name(dataset, base):
  assert references.base_name(dataset) == base


@pytest.mark.parametrize("dataset, source, row", [
    ("tiny_imagenet", "the TinyImageNet MAE study", "finetune_random_init"),
    ("oxford_iiit_pet", "the Oxford-IIIT Pets MAE study", "linprobe"),
    ("imagenet2012", "official MAE", "finetune"),
    ("fashion_mnist", "Fashion-MNIST README", "HOG+SVM"),
    ("fashion_mnist:/usr/share/datasets/fashion-mnist", "Fashion-MNIST README", "HOG+SVM"),
    ("ade20k:/data/ADE", "segmentation extension", "segment_random_init"),
    ("ade20k:/data/ADE", "Table 5", "segment"),
    ("btcv:/data/BTCV", "volume extension", "segment3d"),
    ("btcv:/data/BTCV", "MONAI", "segment3d_random_init"),
    ("ETTh1", "ibm/patchtst-etth1-pretrain", "patchtst"),
    ("ett:/data/ETTh1.csv", "Table 2", "gru"),
    ("csv:/data/housing.csv", "Table 5", "ffn"),
    ("ett:/data/ETTh1.csv", "Table 2", "forecast_random_init"),
])
def test_lookup_finds_each_dataset_form(dataset, source, row):
  sets = [s for s in references.figure_sets(dataset) if source in s.source]
  assert sets and any(row in s.rows for s in sets)


def test_no_figures_for_other_datasets():
  for dataset in ("digits", "digits_seg", "oxford_iiit_pet_masks", "mni152", "vega_temps",
                  "wine", "msd:/data/Task09_Spleen", "ett:/data/ETTh2.csv"):
    assert not references.figure_sets(dataset), dataset


def test_units():
  for s in references.FIGURES:
    assert s.source and s.model and s.datasets and s.rows, s
    for row, metrics in s.rows.items():
      assert metrics, (s.source, row)
      for key, value in metrics.items():
        where = (s.source, row, key)
        if key in references.PERCENT:
          assert 1.0 < value <= 100.0, where       # percent, not a fraction
        elif key in references.FRACTION:
          assert 0.0 <= value <= 1.0, where
        else:
          assert key in ("mse", "mae", "rmse", "wd") and value >= 0.0, where
        assert key in report.METRIC_LABELS, where


def test_figures_as_published():
  def rows(dataset, source):
    return next(s for s in references.figure_sets(dataset) if source in s.source).rows

  seg = rows("ade20k:/x", "segmentation extension")
  assert seg["segment"] == {"miou": 28.88, "pixel_acc": 59.86}
  assert seg["segment_random_init"] == {"miou": 28.03, "pixel_acc": 58.08}
  assert rows("btcv:/x", "volume extension")["segment3d"] == {"dice": 0.7712}
  assert rows("housing", "Table 5")["impute"] == {"mse": 0.517, "wd": 0.310}
  assert rows("housing", "Table 5")["ffn"] == {"mse": 0.0093, "wd": 0.248}
  assert rows("ETTh1", "Table 2") == {"forecast": {"mse": 0.077},
                                      "forecast_random_init": {"mse": 0.015},
                                      "gru": {"mse": 0.0007}}
  assert rows("tiny_imagenet", "TinyImageNet")["finetune"] == {"top1": 45.6}


@pytest.mark.parametrize("config_name, arg, figures", [
    ("tiny_imagenet.py", None, {"finetune": {"top1": 45.6},
                                "finetune_random_init": {"top1": 37.7}}),
    ("ade20k.py", "study", {"segment": {"miou": 28.88, "pixel_acc": 59.86},
                            "segment_random_init": {"miou": 28.03, "pixel_acc": 58.08}}),
    ("btcv.py", None, {"segment3d": {"dice": 0.7712}, "segment3d_random_init": {"dice": 0.7548}}),
])
def test_the_study_configs_print_the_studys_figures_beside_their_runs(config_name, arg, figures):
  """Each study config's results.md: the TinyImageNet study's figures, its source named, every
  row beside one of the runs the config makes (a stage or its random-init twin)."""
  from tests.helpers import load_config  # pylint: disable=g-import-not-at-top
  config = load_config(config_name, arg)
  (study,) = [s for s in references.figure_sets(config.data.dataset)
              if s.source.startswith("the TinyImageNet MAE study")]
  assert study.rows == figures
  runs = set(config.stages.split(",")) | set(config.baselines.split(","))
  assert set(study.rows) <= runs
  ours = {run: {key: 1.0 for key in metrics} for run, metrics in figures.items()}
  summary = {k: v for k, v in ours.items() if k in config.stages.split(",")}
  summary["baselines"] = {k: v for k, v in ours.items() if k not in summary}
  md = report.published_figures(summary, config.data.dataset)
  assert f"### {study.source}: {study.model}" in md
  for metrics in figures.values():
    for value in metrics.values():
      assert f" {value:g} (this run: 1) |" in md


@pytest.mark.parametrize("config_name, arg, source", [
    ("etth1.py", "study", "Table 2"), ("california_housing.py", None, "Table 5")])
def test_series_and_table_study_figures_stand_beside_runs_of_their_configs(config_name, arg,
                                                                          source):
  from tests.helpers import load_config  # pylint: disable=g-import-not-at-top
  config = load_config(config_name, arg)
  (study,) = [s for s in references.figure_sets(config.data.dataset) if source in s.source]
  stages = config.stages.split(",")
  assert set(study.rows) <= set(stages) | set(config.baselines.split(","))
  summary = {"baselines": {}}
  for run, metrics in study.rows.items():
    (summary if run in stages else summary["baselines"])[run] = {k: 1.0 for k in metrics}
  md = report.published_figures(summary, config.data.dataset)
  assert f"### {study.source}: {study.model}" in md
  assert md.count("(this run: 1)") == sum(len(m) for m in study.rows.values())
