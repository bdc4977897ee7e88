"""Model loading, the architecture table and the sequential calibration driver."""
