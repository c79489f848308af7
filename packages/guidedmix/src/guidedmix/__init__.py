"""GuidedMix-Net: labeled images as reference for pseudo masks of unlabeled ones (semi-supervised segmentation)."""
