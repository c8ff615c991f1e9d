"""Figures others published for the datasets our configs ship with, and which run they apply to.

Pure data and lookup; report.py prints them in each run's results.md beside the run's own.
A set's rows are keyed by our run name (a stage or baseline, so ours can stand beside) where the
figure measures the same kind of run, else by a label of what was measured. Metric keys and
units are summary.json's: top1, miou and pixel_acc in percent; dice a fraction; mse, mae, rmse
and wd in the scaled units of the data.
"""

import dataclasses
import os

# Metric keys by unit, for checks (tests/test_references.py).
PERCENT = ("top1", "top5", "miou", "pixel_acc")
FRACTION = ("dice",)

# Sources whose name in config.data.dataset is a file: their run is named after the file.
_FILE_PREFIXES = ("ett", "csv")


@dataclasses.dataclass(frozen=True)
class FigureSet:
  """Published figures from one source for one model."""
  source: str                            # who published them, and where
  model: str
  datasets: tuple[str, ...]              # base names (base_name) of the runs it applies to
  rows: dict[str, dict[str, float]]      # run name or label -> {metric key: value}
  note: str = ""                         # how its data or protocol differ from ours, if they do


def base_name(dataset: str) -> str:
  """The dataset a run's source name stands for: 'tfds:imagenet2012/subset:5.1.0' ->
  'imagenet2012', 'fashion_mnist:/usr/share/datasets/fashion-mnist' -> 'fashion_mnist',
  'ett:/data/ETTh1.csv' -> 'ETTh1' (series and tables name themselves after their file)."""
  dataset = dataset.removeprefix("tfds:")
  head, sep, rest = dataset.partition(":")
  if sep and head in _FILE_PREFIXES:
    return os.path.splitext(os.path.basename(rest))[0]
  return head.split("/")[0]


def figure_sets(dataset: str) -> list[FigureSet]:
  """Every published set for the run of `dataset` (its source's name), in FIGURES' order."""
  name = base_name(dataset)
  return [s for s in FIGURES if name in s.datasets]


_MAE_PAPER = "official MAE (He et al. 2022, the MAE paper and facebookresearch/mae)"
_TIN_STUDY = "the TinyImageNet MAE study"
_IMAGENET = ("imagenet2012",)
_ADE20K = ("ade20k",)
_BTCV = ("btcv",)
_ETTH1 = ("ETTh1",)
# The offline series of data/series.py: the field publishes nothing on them, so their sets hold
# the benchmark of the same kind (Electricity/ETTh1, Weather), labelled, for scale only.
_ELECDEMAND = ("elecdemand",)
_NYC_WEATHER = ("nyc_weather",)
_DLINEAR_PAPER = "Zeng et al., AAAI 2023 (the DLinear paper), Table 2"
_PATCHTST_PAPER = "Nie et al., ICLR 2023 (the PatchTST paper), Table 3"
_NOT_OUR_DATA = ("Published on {}, not on this dataset: the data differ, so these give the "
                 "field's scale of error at horizon 96 (z-scored series, setting M), not a "
                 "target. Not comparable with a run at another horizon.")
# California housing as a csv: file: the original housing.csv, or scikit-learn's frame saved
# under a name of one's choosing.
_HOUSING = ("housing", "california_housing", "cal_housing")

FIGURES: tuple[FigureSet, ...] = (
    # Image classification.
    FigureSet(_MAE_PAPER, "ViT-B/16", _IMAGENET,
              {"finetune": {"top1": 83.6}, "linprobe": {"top1": 68.0}},
              "ImageNet-1k at 224 px."),
    FigureSet(_MAE_PAPER, "ViT-L/16", _IMAGENET,
              {"finetune": {"top1": 85.9}, "linprobe": {"top1": 75.8}},
              "ImageNet-1k at 224 px."),
    FigureSet(_MAE_PAPER, "ViT-H/14", _IMAGENET,
              {"finetune": {"top1": 86.9}, "linprobe": {"top1": 76.6}},
              "ImageNet-1k at 224 px."),
    FigureSet("the Oxford-IIIT Pets MAE study", "ViT-B/16", ("oxford_iiit_pet",),
              {"finetune": {"top1": 84.86}, "linprobe": {"top1": 75.63}},
              "From the official ImageNet-pretrained weights (configs/pets.py:init=...), 224 px; "
              "a run that pretrains on Pets itself is not the same protocol."),
    FigureSet(_TIN_STUDY, "ViT, 8x8 patches on 64 px images", ("tiny_imagenet",),
              {"finetune": {"top1": 45.6}, "finetune_random_init": {"top1": 37.7}},
              "Scored on one 64x64 view of each validation image, as configs/tiny_imagenet.py "
              "does by default (not with eval_crop_ratio 0.875). The study's model size and "
              "schedule may differ from this run's config."),
    FigureSet("Fashion-MNIST README (zalandoresearch/fashion-mnist), submitted benchmarks, "
              "not verified by the dataset's authors", "each row its own model",
              ("fashion_mnist",),
              {"2 Conv Layers with max pooling (Keras)": {"top1": 87.6},
               "MLP 256-128-64": {"top1": 90.0},
               "HOG+SVM": {"top1": 92.6},
               "ResNet18 (augmentation)": {"top1": 94.9},
               "WRN40-4 8.9M params (crops/flips)": {"top1": 96.7},
               "Human performance (crowd-sourced, 1,000 test images)": {"top1": 83.5}},
              "Test accuracy of supervised models trained on all 60,000 training labels, not "
              "our stages: a different protocol from MAE pretraining then probing or "
              "fine-tuning."),
    # 2-D segmentation.
    FigureSet(_MAE_PAPER + ", Table 5", "ViT-B/16 + UPerNet", _ADE20K,
              {"segment": {"miou": 48.1}},
              "MAE pretraining on ImageNet-1k, then UPerNet on ADE20K (512 crops, 160k "
              "iterations): configs/ade20k.py:init=... from the official weights."),
    FigureSet("mmsegmentation's run (configs/mae/metafile.yaml)", "ViT-B/16 + UPerNet", _ADE20K,
              {"segment": {"miou": 48.13}},
              "The MAE paper's protocol; 48.7 mIoU with multi-scale and flip testing."),
    FigureSet(_MAE_PAPER + ", Table 5", "ViT-L/16 + UPerNet", _ADE20K,
              {"segment": {"miou": 53.6}},
              "MAE pretraining on ImageNet-1k, then UPerNet on ADE20K; a larger model than "
              "the shipped config's ViT-B/16."),
    FigureSet(_TIN_STUDY + ", segmentation extension", "the study's ViT encoder + segmenter",
              _ADE20K,
              {"segment": {"miou": 28.88, "pixel_acc": 59.86},
               "segment_random_init": {"miou": 28.03, "pixel_acc": 58.08}},
              "ADE20K images resized to 256x256, 400 epochs (configs/ade20k.py:study); the "
              "default protocol (512 crops, 160k iterations) is not the same."),
    # 3-D segmentation.
    FigureSet(_TIN_STUDY + ", volume extension", "UNETR", _BTCV,
              {"segment3d": {"dice": 0.7712}, "segment3d_random_init": {"dice": 0.7548}},
              "MAE pretrained on the scans, BTCV's 20 unlabelled ones included, as "
              "configs/btcv.py does (config.data.pretrain_splits). The study's split, "
              "preprocessing and schedule may differ from this run's."),
    FigureSet("MONAI's BTCV tutorials", "UNETR (ViT-B/16 encoder)", _BTCV,
              {"segment3d": {"dice": 0.82}, "segment3d_random_init": {"dice": 0.79}},
              "segment3d: after self-supervised pretraining on the 24 training volumes; "
              "MONAI's recipe and preprocessing may differ from this run's."),
    FigureSet("NVIDIA NGC model card clara_pt_unetr_ct_btcv_segmentation (MONAI/Clara, 2022)",
              "UNETR (ViT-B/16 encoder)", _BTCV,
              {"segment3d_random_init": {"dice": 0.8270}},
              "Supervised on BTCV's labels alone (the card names no pretraining): 24 training "
              "and 6 test volumes, 96^3 crops, Adam 2e-4, Dice + cross-entropy; mean Dice on "
              "its 6 test volumes, not on this run's split."),
    # Forecasting.
    FigureSet("HF hub model card ibm/patchtst-etth1-pretrain", "PatchTST (context 512)", _ETTH1,
              {"patchtst": {"mse": 0.3881}},
              "Pretrained on ETTh1 with PatchTST's masking, then fine-tuned; horizon 96, "
              "setting M, z-scored test windows (the standard protocol, configs/etth1.py). "
              "Not comparable with a run at another horizon or setting, or on the study's "
              "protocol."),
    FigureSet(_TIN_STUDY + ", Table 2", "transformer autoencoders, RNNs", _ETTH1,
              {"forecast": {"mse": 0.077},
               "forecast_random_init": {"mse": 0.015},
               "gru": {"mse": 0.0007}},
              "The study's protocol (configs/etth1.py:study): oil temperature alone, min-max "
              "scaled, a 70/20/10 split, 24 lagged values -> the next one (horizon 1). Its "
              "transformer with MAE masking stands beside our forecast stage (pretrained with "
              "the MAE), its transformer without masking beside forecast_random_init (the same "
              "transformer, no masked pretraining); the mask-ratio sweep (configs/sweeps/"
              "series_masking.py) has the other ratios and the RNNs. Not comparable with a run "
              "on the standard protocol."),
    FigureSet(_DLINEAR_PAPER, "DLinear, NLinear (look-back 336); Repeat = persistence",
              _ELECDEMAND,
              {"DLinear, Electricity, H=96": {"mse": 0.140, "mae": 0.237},
               "NLinear, Electricity, H=96": {"mse": 0.141, "mae": 0.237},
               "Repeat, Electricity, H=96": {"mse": 1.588, "mae": 0.946},
               "DLinear, ETTh1, H=96": {"mse": 0.375, "mae": 0.399},
               "NLinear, ETTh1, H=96": {"mse": 0.374, "mae": 0.394}},
              _NOT_OUR_DATA.format("Electricity (321 clients' hourly load, 70/10/20) and ETTh1 "
                                   "(Informer's 12/4/4 months)")),
    FigureSet(_PATCHTST_PAPER, "PatchTST supervised: /64 (look-back 512), /42 (336)",
              _ELECDEMAND,
              {"PatchTST/64, Electricity, H=96": {"mse": 0.129, "mae": 0.222},
               "PatchTST/64, ETTh1, H=96": {"mse": 0.370, "mae": 0.400},
               "PatchTST/42, ETTh1, H=96": {"mse": 0.375, "mae": 0.399}},
              _NOT_OUR_DATA.format("Electricity and ETTh1")),
    FigureSet(_DLINEAR_PAPER, "DLinear, NLinear (look-back 336); Repeat = persistence",
              _NYC_WEATHER,
              {"DLinear, Weather, H=96": {"mse": 0.176, "mae": 0.237},
               "NLinear, Weather, H=96": {"mse": 0.182, "mae": 0.232},
               "Repeat, Weather, H=96": {"mse": 0.259, "mae": 0.254}},
              _NOT_OUR_DATA.format("Weather (21 variables every 10 minutes at one German "
                                   "station, 2020)")),
    FigureSet(_PATCHTST_PAPER, "PatchTST/64 supervised (look-back 512)", _NYC_WEATHER,
              {"PatchTST/64, Weather, H=96": {"mse": 0.149, "mae": 0.198}},
              _NOT_OUR_DATA.format("Weather")),
    # Imputation.
    FigureSet(_TIN_STUDY + ", tables extension, Table 5",
              "MAE imputer; the study's FFN (D -> D, missing entries 0)", _HOUSING,
              {"ffn": {"mse": 0.0093, "wd": 0.248}, "impute": {"mse": 0.517, "wd": 0.310}},
              "California housing, [0, 1]-scaled, MSE and the summed Wasserstein distance on "
              "the removed entries (ours: summary.json's mse and wd). Its MAE MSE of 0.517 "
              "cannot arise on [0, 1]-scaled data: predicting 0.5 everywhere already gives at "
              "most 0.25, so 0.517 means errors beyond the data's half-range on average, a "
              "scaling or bookkeeping slip rather than a finding."),
)
