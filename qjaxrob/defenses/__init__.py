"""Defenses: quantum differential privacy bounds, certified robustness, smoothing, DP-SGD."""
