"""Tables in the loop: the impute stage (ReMasker's masked autoencoder on the MAE core) and
every baseline imputer on a generated housing.csv; the metrics equal those of the written files."""

import json

import numpy as np
import pytest

from mae_jax import experiment
from mae_jax.tasks import table_baselines as impute_baselines
from mae_jax.tasks import tables as impute_task
from mae_jax.errors import ConfigError
from tests.helpers import load_config
from tests.test_tables import write_housing


@pytest.mark.slow
def test_housing_smoke_imputes_and_scores_like_its_files(tmp_path):
  path = tmp_path / "housing.csv"
  write_housing(path, 300, empty_bedrooms=(3, 40))
  config = load_config("california_housing.py", "smoke")
  config.data.dataset = f"csv:{path}"
  summary = experiment.run(config, str(tmp_path / "run"))
  impute = summary["impute"]
  assert set(summary["baselines"]) == {"mean", "ffn", "mlp", "knn", "mice", "missforest"}
  table = impute_task.table_source(config)
  assert len(table.columns) == 14 and impute["removed_entries"] == table.test_removed.sum()
  for name, result in [("impute", impute), *summary["baselines"].items()]:
    folder = tmp_path / "run" / (name if name == "impute" else f"baselines/{name}") / "predictions"
    from_files = impute_baselines.metrics_from_files(str(folder))
    for key in ("mse", "rmse", "wd"):
      np.testing.assert_allclose(from_files[key], result[key], rtol=1e-6, err_msg=name)
  # The mean imputer, recomputed here: the training rows' observed means.
  means = np.nanmean(table.train, axis=0)
  filled = impute_baselines.finalize(table, np.broadcast_to(means, table.test.shape))
  np.testing.assert_allclose(summary["baselines"]["mean"]["rmse"], np.sqrt(np.mean(
      (filled - table.test_truth)[table.test_removed] ** 2)), rtol=1e-5)
  results = (tmp_path / "run" / "results.md").read_text()
  assert "| impute (masked autoencoder) |" in results
  # The study's Table 5 beside ours: its FFN beside our ffn, its MAE beside our impute stage.
  table5 = results.split("tables extension, Table 5")[1]
  assert f"| the study's FFN (D -> D, missing = 0) | 0.0093 (this run: " \
         f"{summary['baselines']['ffn']['mse']:.4g}) |" in table5
  assert "cannot arise" in table5
  assert json.loads((tmp_path / "run" / "summary.json").read_text())["impute"] == impute


def test_table_configs_refuse_other_stages_and_patches():
  config = load_config("tables.py", "smoke")
  config.stages = "pretrain,impute"
  with pytest.raises(ConfigError, match="holds tables, which has no stage 'pretrain'"):
    experiment.validate(config)
  config = load_config("tables.py", "smoke")
  config.model.variant = "mu/4"
  with pytest.raises(ConfigError, match="patch size must be 1"):
    experiment.validate(config)
  config = load_config("tables.py", "smoke")
  config.baselines = "lstm"
  with pytest.raises(ConfigError, match="holds tables, which has no baseline 'lstm'"):
    experiment.validate(config)
