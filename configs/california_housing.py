"""Imputing California Housing (the TinyImageNet study's table; ReMasker's benchmark), with every
baseline imputer on the same rows and removed entries.

  mae-jax --config=configs/california_housing.py \
      --config.data.dataset=csv:/path/to/housing.csv --workdir=/tmp/mae_housing

Either layout: the original housing.csv (nine numbers and ocean_proximity, one-hot: 14 model
columns; the rows with an empty total_bedrooms dropped, as the study did) or scikit-learn's
fetch_california_housing frame saved as CSV. 20% of the entries removed at random, min-max
scaling with the training rows, an 80/20 row split; the impute stage is ReMasker's recipe
(width 32, encoder depth 6, decoder depth 4, re-masking 0.5, AdamW lr 1e-3 at batch 64, 600
epochs). The baselines: mean, the study's own (`ffn`: one D -> D network on rows with the missing
entries at 0), a per-column MLP, kNN, MICE, MissForest. summary.json: MSE, RMSE and the summed
Wasserstein distance on the removed entries, min-max scaled; results.md has the study's Table 5
beside (docs/reproducing.md). `:smoke` shrinks it.
"""

from mae_jax import config_lib


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False)
  c = config_lib.base_config("tables")
  config_lib.remasker_recipe(c)
  c.baselines = "mean,ffn,mlp,knn,mice,missforest"
  c.data.update(dataset="csv:housing.csv", missing_rate=0.2, mechanism="mcar",
                test_fraction=0.2, existing_missing="drop", eval_batch_size=1024)
  c.impute.update(batch_size=64, num_epochs=600, base_lr=4e-3, warmup_epochs=40,
                  eval_every_epochs=100, log_every_steps=200, checkpoint_every_steps=2000)
  if arg.smoke:
    config_lib.smoke(c, image_size=32, patch_size=1)
    c.model.variant = "mu/1"
  return c
