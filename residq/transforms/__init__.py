"""Function-preserving rewrites applied before a method (smoothing, rotation, reordering)."""
