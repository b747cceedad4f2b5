"""Stage 3, simulation: walks lowered programs over states and reads results off them.

``engine`` (the forward walk: statevector, density matrix), ``measure`` (Pauli-term values,
probabilities, the one sign table), ``sampling`` (finite-shot estimates and basis samples),
``param_shift`` (parameter-shift gradients of shot estimates), ``adjoint`` (adjoint-method
gradients, the same walk backwards), ``trajectories`` (noise by quantum trajectories).
Entry points with validation and ``jit`` live one floor up in ``qjaxrob.simulate``.
"""
