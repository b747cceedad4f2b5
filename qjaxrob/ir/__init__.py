"""Stage 1, the circuit IR: what a user builds.

``gates`` (the closed gate table), ``channels`` (Kraus channels), ``observables`` (Pauli
sums), ``circuit`` (the frozen ``Circuit`` of ``Op`` s, ``Repeat`` blocks, angles) and
``noise`` (noise models applied to circuits). Nothing here simulates; it imports only
``errors``, ``checks`` and itself.
"""
