"""Stage 2, lowering: a circuit's ops become what the simulation walks.

``rolling`` (repeated layers -> scanned ``Roll`` nodes), ``fusion`` (gates -> fused
blocks), ``interpreter`` (long runs -> one scan over a table of blocks), ``ring`` (runs of
blocks on consecutive wire pairs -> one scan with a rotating layout). Imports the IR
and the kernels, never the simulation.
"""
