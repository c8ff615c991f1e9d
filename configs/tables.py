"""Offline imputation quickstart on real tables bundled with scikit-learn (no download):
diabetes by default, `:data=breast_cancer` or `:data=wine`.

  mae-jax --config=configs/tables.py --workdir=/tmp/mae_tables

20% of the entries removed completely at random (per original column), rows split 80/20, the
table min-max scaled with the training rows; the `impute` stage trains ReMasker's masked
autoencoder (one token per entry, missing entries never in the encoder, half the observed ones
re-masked) on the training rows and fills the test rows' missing entries. Every imputer baseline
runs on the same rows and removed entries. summary.json: `impute: {"mse", "rmse", "wd", ...}` in
scaled units; impute/predictions/: imputed.csv, truth.csv, missing.csv, scaling.json. `:smoke`
shrinks it.
"""

from mae_jax import config_lib


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False, data="diabetes")
  c = config_lib.base_config("tables")
  config_lib.remasker_recipe(c)
  c.baselines = "mean,ffn,mlp,knn,mice,missforest"
  c.data.update(dataset=arg.data, missing_rate=0.2, mechanism="mcar", test_fraction=0.2,
                existing_missing="drop", eval_batch_size=256)
  c.impute.update(batch_size=64, num_epochs=300, base_lr=4e-3, warmup_epochs=20,
                  eval_every_epochs=100, log_every_steps=100, checkpoint_every_steps=1000)
  if arg.smoke:
    config_lib.smoke(c, image_size=32, patch_size=1)
    c.model.variant = "mu/1"
  return c
