"""Weight methods: ``(W, stats, recipe) -> QuantizedLayer``; maths as plain functions."""
