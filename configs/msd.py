"""Any Medical Segmentation Decathlon task (dataset.json, imagesTr/, labelsTr/): the same MAE ->
UNETR recipe as configs/btcv.py, 20% of the labelled cases held out for validation (from the
seed); pretraining also reads the unlabelled scans of dataset.json's "test" list (imagesTs/),
`--config.data.pretrain_splits=training` for the training cases alone. CT tasks (spleen,
liver, pancreas, ...) keep the abdominal window; MRI tasks take per-volume z-scores: `:mri`
(BraTS, prostate, heart: multi-channel files keep their channels).

  mae-jax --config=configs/msd.py --config.data.dataset=msd:/path/to/Task09_Spleen --workdir=DIR
  mae-jax --config=configs/msd.py:mri --config.data.dataset=msd:/path/to/Task01_BrainTumour ...

`:smoke` shrinks it to a CPU minute.
"""

import importlib.util
import os

from mae_jax import config_lib


def _btcv():
  """configs/btcv.py beside this file (configs load by path, not as a package)."""
  spec = importlib.util.spec_from_file_location(
      "btcv_config", os.path.join(os.path.dirname(os.path.abspath(__file__)), "btcv.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False, mri=False)
  c = _btcv().get_config("smoke" if arg.smoke else "")
  c.data.update(dataset="msd:/path/to/Task09_Spleen", num_classes=0, val_fraction=0.2)
  if arg.mri:
    c.data.update(intensity="zscore", spacing=(1.0, 1.0, 1.0))
  return c
