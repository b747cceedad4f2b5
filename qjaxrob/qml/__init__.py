"""Quantum machine learning: encodings, ansatze, models, training, data, landscape diagnostics."""

from qjaxrob.qml.ansatze import hardware_efficient

__all__ = ["hardware_efficient"]
