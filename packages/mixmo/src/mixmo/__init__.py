"""MixMo."""
