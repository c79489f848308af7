"""MixViT: multi-input multi-output mixing for vision transformers (thesis ch. 4)."""
