"""SciMix: swapping semantic contents for mixing images (thesis ch. 2)."""
