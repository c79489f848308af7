"""RealMix and its semi-supervised baselines (Mean Teacher, MixMatch, FixMatch) on the mixlab core."""
