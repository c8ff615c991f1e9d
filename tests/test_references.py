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
    ("csv:/data/housing.csv", "tables extension", "mlp"),
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
  assert rows("housing", "tables extension")["impute"] == {"mse": 0.517, "wd": 0.310}
  assert rows("tiny_imagenet", "TinyImageNet")["finetune"] == {"top1": 45.6}
