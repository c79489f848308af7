"""SAMOSA: semantic augmentation by mixing contents for semi-supervised learning (thesis ch. 2)."""
