"""The pretraining monitor (monitor.py): its k-NN agrees with scikit-learn's, its probe and its
collapse signs respond as they should, and a pretraining run logs them."""

import json
import os

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from mae_jax import monitor


def _clusters(seed: int, n: int, d: int = 16, classes: int = 5, spread: float = 1.0):
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(classes, d)) * 3
  y = rng.integers(0, classes, n)
  return centres[y] + spread * rng.normal(size=(n, d)), y


@pytest.mark.parametrize("seed,spread", [(0, 1.0), (1, 4.0), (2, 8.0)])
def test_knn_matches_scikit_learn(seed, spread):
  bank, bank_y = _clusters(seed, 400, spread=spread)
  queries, query_y = _clusters(seed + 10, 150, spread=spread)
  ours = monitor.knn_top1(bank, bank_y, queries, query_y, k=20)
  ref = KNeighborsClassifier(n_neighbors=20, metric="cosine", algorithm="brute")
  ref.fit(bank, bank_y)
  assert ours == pytest.approx(100 * np.mean(ref.predict(queries) == query_y))


def test_fewshot_probe_separates_clusters_and_not_noise():
  bank, bank_y = _clusters(0, 500, spread=0.5)
  queries, query_y = _clusters(0, 200, spread=0.5)   # same centres: the same seed
  assert monitor.fewshot_top1(bank, bank_y, queries, query_y, shots=5) > 95
  rng = np.random.default_rng(3)
  noise = monitor.fewshot_top1(rng.normal(size=(500, 16)), bank_y, rng.normal(size=(200, 16)),
                               query_y, shots=5)
  assert noise < 50


def test_collapse_signs():
  rng = np.random.default_rng(0)
  spread = rng.normal(size=(300, 32))
  collapsed = np.ones((300, 32)) + 1e-6 * rng.normal(size=(300, 32))
  assert monitor.feature_std(collapsed) < 1e-4 < monitor.feature_std(spread)
  assert monitor.feature_std(spread) == pytest.approx(1 / np.sqrt(32), rel=0.1)
  assert monitor.effective_rank(spread) > 25
  low = rng.normal(size=(300, 2)) @ rng.normal(size=(2, 32))
  assert monitor.effective_rank(low) < 2.01


def test_pretraining_logs_the_monitor(tmp_path):
  from mae_jax import experiment  # pylint: disable=g-import-not-at-top
  from tests.helpers import load_config  # pylint: disable=g-import-not-at-top
  config = load_config("digits.py", "smoke")
  config.stages, config.baselines = "pretrain", ""
  config.pretrain.update(knn_bank=200, knn_queries=100)
  summary = experiment.run(config, str(tmp_path))
  assert 0 <= summary["pretrain"]["knn_top1"] <= 100
  assert {"fewshot_top1", "feature_std", "effective_rank"} <= set(summary["pretrain"])
  with open(os.path.join(tmp_path, "pretrain", "metrics.jsonl")) as f:
    evals = [r for r in map(json.loads, f) if r["split"] == "eval"]
  assert "knn_top1" in evals[-1] and "loss" in evals[-1]
  assert os.path.exists(os.path.join(tmp_path, "knn.png"))
