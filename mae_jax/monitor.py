"""What a frozen encoder's features are worth, cheaply, while it pretrains (config.pretrain.knn_*):
a k-NN classifier, a few-shot linear probe, and signs of collapse.

Features are pooled encoder outputs of a labelled bank and of held-out queries (both training
examples, disjoint; the test split is never read). Pure numpy, run on the host in the writing
process: a few thousand feature vectors cost milliseconds here, the encoder's forward pass is
what the stage pays (tasks/images.py).
"""

import dataclasses

import numpy as np


def knn_top1(bank: np.ndarray, bank_labels: np.ndarray, queries: np.ndarray,
             query_labels: np.ndarray, k: int = 20) -> float:
  """Top-1 % of a k-NN classifier: cosine similarity, the k nearest bank vectors vote, one vote
  each, ties to the smaller class id (scikit-learn's KNeighborsClassifier(k, metric="cosine")).

  bank (B, D), bank_labels (B,) int, queries (Q, D), query_labels (Q,) int.
  """
  k = min(k, len(bank))
  sim = _unit(queries) @ _unit(bank).T                       # (Q, B)
  # Nearest first; among equal similarities the earlier bank row, as a stable sort gives.
  nearest = np.argsort(-sim, axis=1, kind="stable")[:, :k]   # (Q, k)
  classes = int(max(bank_labels.max(), query_labels.max())) + 1
  votes = np.zeros((len(queries), classes))
  np.add.at(votes, (np.arange(len(queries))[:, None], bank_labels[nearest]), 1.0)
  return 100.0 * float(np.mean(votes.argmax(axis=1) == query_labels))


def fewshot_top1(bank: np.ndarray, bank_labels: np.ndarray, queries: np.ndarray,
                 query_labels: np.ndarray, shots: int, ridge: float = 1.0) -> float:
  """Top-1 % of a linear probe fitted on `shots` bank examples per class (the first of each):
  ridge regression onto one-hot targets of standardised features, closed form."""
  pick = np.concatenate([np.flatnonzero(bank_labels == c)[:shots]
                         for c in np.unique(bank_labels)])
  x, y = bank[pick], bank_labels[pick]
  mean, std = x.mean(0), x.std(0) + 1e-6
  x = np.concatenate([(x - mean) / std, np.ones((len(x), 1))], axis=1)
  targets = np.eye(int(max(bank_labels.max(), query_labels.max())) + 1)[y]
  w = np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ targets)
  q = np.concatenate([(queries - mean) / std, np.ones((len(queries), 1))], axis=1)
  return 100.0 * float(np.mean((q @ w).argmax(axis=1) == query_labels))


def feature_std(features: np.ndarray) -> float:
  """Mean over dimensions of the std across examples of the L2-normalised features: 0 when
  every example maps to one point (collapse), 1/sqrt(D) for features spread evenly."""
  return float(_unit(features).std(axis=0).mean())


def effective_rank(features: np.ndarray) -> float:
  """exp(entropy) of the centred features' normalised singular values (RankMe, Garrido et al.
  2023): 1 for collapsed features, up to min(N, D)."""
  s = np.linalg.svd(features - features.mean(0), compute_uv=False)
  p = s / max(s.sum(), 1e-12)
  p = p[p > 0]
  return float(np.exp(-(p * np.log(p)).sum()))


@dataclasses.dataclass(frozen=True)
class FeatureMonitor:
  """The metrics of one set of pooled features: bank (B, D) + labels, queries (Q, D) + labels."""
  k: int = 20
  shots: int = 10

  def __call__(self, bank: np.ndarray, bank_labels: np.ndarray, queries: np.ndarray,
               query_labels: np.ndarray) -> dict[str, float]:
    out = {"knn_top1": knn_top1(bank, bank_labels, queries, query_labels, self.k),
           "feature_std": feature_std(np.concatenate([bank, queries])),
           "effective_rank": effective_rank(np.concatenate([bank, queries]))}
    if self.shots:
      out["fewshot_top1"] = fewshot_top1(bank, bank_labels, queries, query_labels, self.shots)
    return out


def _unit(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float64)
  return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

