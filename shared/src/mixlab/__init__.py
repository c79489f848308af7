"""mixlab core."""
