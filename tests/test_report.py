"""End-of-run report: curves from metrics.jsonl, results table with published figures."""

import json
import os

import numpy as np

from mae_jax import registry, report


def _fake_run(workdir):
  for folder, stage in (("pretrain", "pretrain"), ("linprobe", "linprobe"),
                        (os.path.join("baselines", "linprobe_random_init"), "linprobe")):
    os.makedirs(os.path.join(workdir, folder))
    with open(os.path.join(workdir, folder, "metrics.jsonl"), "w") as f:
      for step in range(10, 60, 10):
        rec = {"stage": stage, "split": "train", "step": step, "loss": 1.0 / step}
        if stage != "pretrain":
          rec["top1"] = float(step)
        f.write(json.dumps(rec) + "\n")
      if stage != "pretrain":
        f.write(json.dumps({"stage": stage, "split": "eval", "step": 50, "top1": 42.0}) + "\n")
  return {"pretrain": {"loss": 0.3333}, "linprobe": {"top1": 71.25, "top5": 90.5},
          "visualize": {"png": "x"},
          "baselines": {"linprobe_random_init": {"top1": 12.0, "top5": 40.0},
                        "raw_pixels": {"top1": 30.0, "top5": 70.0}}}


def test_report_plots_and_table(tmp_path):
  summary = _fake_run(str(tmp_path))
  images = registry.get("images")
  written = report.write_report(str(tmp_path), summary, "oxford_iiit_pet", "B/16",
                                images.titles(), images.twins())
  assert written == [report.LOSS_PNG, report.ACCURACY_PNG, report.RESULTS_MD]
  from PIL import Image  # pylint: disable=g-import-not-at-top
  loss = np.asarray(Image.open(tmp_path / report.LOSS_PNG).convert("RGB"))
  acc = np.asarray(Image.open(tmp_path / report.ACCURACY_PNG).convert("RGB"))
  # Two panels with a loss, side by side (the random-init twin drawn on the linear probe's);
  # one with accuracy (pretrain has none).
  assert loss.shape[1] > acc.shape[1] > loss.shape[0]
  assert abs(loss.shape[1] - 2 * acc.shape[1]) < 20
  assert (loss < 250).any() and (acc < 250).any()           # something is drawn
  md = (tmp_path / report.RESULTS_MD).read_text()
  table, paired = md.split("## Pretrained vs random init")
  rows = {line.split(" | ")[0].strip("| "): line
          for line in table.splitlines() if line.startswith("|")}
  assert "| 71.25 | 90.50 | 75.63 |" in rows["linear probe"]
  assert "loss 0.3333" in rows["pretrain (MAE loss)"]
  assert rows["logistic regression on raw pixels"].endswith("| 30.00 | 70.00 |  |")
  assert "study" in md and "![loss.png](loss.png)" in md
  # Every published set for the dataset, under its source, this run's figure beside.
  published = md.split("## Published figures")[1]
  assert "### the Oxford-IIIT Pets MAE study: ViT-B/16" in published
  assert "| linear probe | 75.63 (this run: 71.25) |" in published
  assert "| fine-tune | 84.86 |" in published
  # The stage minus its twin, on the same seeds.
  assert "| linear probe | top1 | 71.25 | 12 | +59.25 (higher is better) |" in paired


def test_table_has_official_numbers_for_imagenet_only():
  summary = {"finetune": {"top1": 80.0, "top5": 95.0}}
  assert "| 80.00 | 95.00 | 83.60 |" in report.results_table(summary, "tfds:imagenet2012:5.1.0",
                                                             "B/16")
  digits = report.results_table(summary, "digits", "mini/4")
  assert digits.splitlines()[0].count("|") == 4 and "83.6" not in digits
  # The column follows the run's model where a set has it.
  assert "| 80.00 | 95.00 | 85.90 |" in report.results_table(summary, "imagenet2012", "L/16")


def test_published_figures_for_every_modality(tmp_path):
  # A segmentation run on ADE20K: every set, each metric with ours beside.
  summary = {"segment": {"miou": 25.0, "pixel_acc": 55.0},
             "baselines": {"segment_random_init": {"miou": 20.0, "pixel_acc": 50.0}}}
  written = report.write_report(str(tmp_path), summary, "ade20k:/data/ADE", "B/16",
                                {"segment": "segmentation"})
  assert written == [report.RESULTS_MD]
  md = (tmp_path / report.RESULTS_MD).read_text()
  published = md.split("## Published figures")[1]
  assert "### the TinyImageNet MAE study, segmentation extension" in published
  assert "| segmentation | 28.88 (this run: 25) | 59.86 (this run: 55) |" in published
  assert "| segment_random_init | 28.03 (this run: 20) | 58.08 (this run: 50) |" in published
  assert "| segmentation | 48.1 (this run: 25) |" in published
  assert "256x256" in published          # the note: the protocol differs

  # Tables: the study's Table 5 (MSE, Wasserstein) beside ours, its FFN beside our ffn.
  ours = {"impute": {"mse": 0.01, "rmse": 0.1, "wd": 0.2},
          "baselines": {"ffn": {"mse": 0.04, "rmse": 0.2, "wd": 0.3}}}
  tables = report.published_figures(ours, "csv:/d/housing.csv")
  assert "### the TinyImageNet MAE study, tables extension, Table 5" in tables
  assert "| run or model | MSE | Wasserstein |" in tables
  assert "| impute | 0.517 (this run: 0.01) | 0.31 (this run: 0.2) |" in tables
  assert "| ffn | 0.0093 (this run: 0.04) | 0.248 (this run: 0.3) |" in tables
  assert "cannot arise" in tables
  # ... and the run's own table: MSE and Wasserstein next to RMSE.
  table = report.results_table(ours, "csv:/d/housing.csv", "remasker/1")
  assert "| run | ours (remasker/1) RMSE | MSE | Wasserstein (sum over columns) |" in table
  assert "| impute | 0.1000 | 0.01000 | 0.2000 |" in table
  assert "| ffn | 0.2000 | 0.04000 | 0.3000 |" in table

  # Fashion-MNIST: other models' figures, by label; none is one of our runs.
  fashion = report.published_figures({"finetune": {"top1": 90.0}},
                                     "fashion_mnist:/usr/share/datasets/fashion-mnist")
  assert "not verified by the dataset's authors" in fashion
  assert "| HOG+SVM | 92.6 |" in fashion and "this run:" not in fashion
  assert report.published_figures(summary, "digits") == ""
