"""ReMasker's missingness sweep: entries removed completely at random (MCAR), at random (MAR)
and not at random (MNAR, logistic) at 10 / 30 / 50 / 70%, every imputer scored on each.

  mae-jax-sweep --config=ames --sweep=missingness --seeds=0,1,2 --workdir=DIR
  mae-jax-sweep --config=adult --sweep=missingness --seeds=0,1,2 --workdir=DIR

As ReMasker's benchmarks call hyperimpute's simulate_nan: the rate is p_miss, the share of each
column that loses entries (config.data.mar_rate "column": under MAR the other half of the columns
stays complete, so MAR at 0.7 removes about 35% of all entries; MCAR and MNAR remove about the
rate of all entries). Each point is one run of the config with its baselines (config.baselines),
so WORKDIR/<point>/seed<k>/summary.json and results.md hold RMSE, MSE and the summed Wasserstein
distance of the MAE imputer (`impute`) and of every baseline imputer on the same entries.
Unlike ReMasker's, entries leave every column, not 8 sampled ones, and imputers are scored on
held-out test rows (docs/results/tables.md).
"""

from mae_jax import sweep_lib

MECHANISMS = ("mcar", "mar", "mnar")
RATES = (0.1, 0.3, 0.5, 0.7)


def get_sweep(config):
  del config  # the same points whatever the table
  return sweep_lib.Sweep(
      axes=[sweep_lib.grid("mechanism x rate", {"data.missing_rate": RATES,
                                                "data.mechanism": MECHANISMS})],
      common={"data.mar_rate": "column"})
