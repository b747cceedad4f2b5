"""Quantum federated learning: data splits, clients, rounds and robust aggregation."""
