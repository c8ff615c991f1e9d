"""The datasets of label maps by name (seg_sources.py reads them), without TensorFlow: the
segmentation modality recognises its configs before anything loads."""

DIGITS_SEG, PETS_MASKS = "digits_seg", "oxford_iiit_pet_masks"
ADE20K, SEGFOLDER = "ade20k:", "segfolder:"      # prefixes of a path


def is_segmentation(dataset: str) -> bool:
  """Whether config.data.dataset names a dataset of label maps (the segment stage's)."""
  return dataset in (DIGITS_SEG, PETS_MASKS) or dataset.startswith((ADE20K, SEGFOLDER))
