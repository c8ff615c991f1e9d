"""Flax linen models: ViT encoder, MAE, classifiers, segmenters; `from_variant(MAE, "B/16")`."""

from mae_jax.models.classifier import Classifier
from mae_jax.models.mae import MAE, Decoder
from mae_jax.models.segmenter import Segmenter
from mae_jax.models.unetr import UNETR
from mae_jax.models.vit import SIZES, Encoder, Variant, decode_variant, from_variant

__all__ = ["Classifier", "MAE", "Decoder", "Segmenter", "UNETR", "SIZES", "Encoder",
           "Variant", "decode_variant", "from_variant"]
