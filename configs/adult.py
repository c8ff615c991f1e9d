"""Imputing UCI Adult (census income, CC BY 4.0; the training file inside mglearn's wheel,
offline: `pip install 'mae-jax[data]'`), the baseline imputers on the same rows and entries.

  mae-jax --config=configs/adult.py --config.seed=0 --workdir=/tmp/mae_adult
  mae-jax-sweep --config=adult --sweep=missingness --seeds=0,1,2 --workdir=/tmp/adult_sweep

32,561 people, 15 columns (six numbers, nine categories one-hot: 107 model columns, a token
each). Its "?" cells (workclass, occupation, native-country) are the table's own missing entries,
kept, never removed nor scored; of the rest, 30% removed completely at random per original
column, rows split 80/20, min-max scaling with the training rows. The impute stage is
ReMasker's model and optimiser (width 32, depth 6, decoder depth 4, re-masking 0.5; AdamW lr
1e-3 at batch 64) on 26,049 training rows, 2 epochs (814 steps; ReMasker's 600 would take weeks
on 2 CPU cores; `--config.impute.num_epochs` for more). missforest is left out of `baselines`
(98 tree ensembles on 26k rows a round: hours on 2 shared cores); add it with
`--config.baselines=...,missforest`.
summary.json: RMSE, MSE and the summed Wasserstein distance on the removed test entries, scaled
units; docs/results/tables.md has the measured figures (3 seeds). `:smoke` shrinks it.
"""

from mae_jax import config_lib


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False)
  c = config_lib.base_config("tables")
  config_lib.remasker_recipe(c)
  c.baselines = "mean,ffn,mlp,knn,mice,gain"
  c.data.update(dataset="adult", missing_rate=0.3, mechanism="mcar", test_fraction=0.2,
                existing_missing="keep", eval_batch_size=1024)
  c.impute.update(batch_size=64, num_epochs=2, base_lr=4e-3, warmup_epochs=0.2,
                  eval_every_epochs=2, log_every_steps=100, checkpoint_every_steps=1000)
  if arg.smoke:
    config_lib.smoke(c, image_size=32, patch_size=1)
    c.baselines = "mean,knn"
  return c
