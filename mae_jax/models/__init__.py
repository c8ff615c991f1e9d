"""Flax linen models: ViT encoder, MAE, classifiers."""

from mae_jax.models.classifier import Classifier, classifier_from_variant
from mae_jax.models.mae import MAE, Decoder, mae_from_variant
from mae_jax.models.vit import SIZES, Encoder, Variant, decode_variant, encoder_from_variant

__all__ = ["Classifier", "classifier_from_variant", "MAE", "Decoder", "mae_from_variant", "SIZES",
           "Encoder", "Variant", "decode_variant", "encoder_from_variant"]
