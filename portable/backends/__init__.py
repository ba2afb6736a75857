"""The backends: every difference between CPU, CUDA and ROCm lives here."""
