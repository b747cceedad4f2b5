"""Memory of the statevector path at n=20: the compiled forward holds at most 3 state-sized
buffers, and a state passed in with donation is updated in place.

Measured with ``jax.jit(...).lower(...).compile().memory_analysis()``. On the CPU backend it
reports the argument, output, alias and temporary (``temp_size_in_bytes``: every buffer
live inside the program, after XLA's buffer assignment has reused dead ones) sizes. What the
program allocates is ``temp + output - alias`` (an output aliased to a donated argument
reuses that buffer); the bound is on it in units of one state (``2**n`` amplitudes), with
1/64 of a state of slack for the small non-state buffers (matrices, parameters, indices).
The Pallas kernels run here in interpret mode, whose grid loop carries input and output
planes (2.5 states for any number of kernels, so ``statevector``, which also returns a
state, holds 4); on a GPU the Triton kernel updates its planes in place, which
``benchmarks/gpu.py`` (section ``memory``) measures on the device."""

import jax
import jax.numpy as jnp
import pytest
from qjaxrob.kernels import apply_diagonal, apply_matrix, pallas

import qjaxrob as qjr
from qjaxrob import backend

N = 20
SLACK = 1 / 64


def _circuit(first):
    """A Repeat (lax.scan) of dense, diagonal and permutation gates. ``first`` differs per
    kernel set: jit caches a traced circuit with the kernels of its first trace, so the
    same circuit traced again under another QJAXROB_KERNELS would reuse them."""
    body = (qjr.Circuit(N).ry(0, qjr.param(0)).cnot(0, N - 1).rzz(5, 6, qjr.param(1))
            .ry(10, qjr.param(2)).crx(10, 2, qjr.param(1)))
    return qjr.Circuit(N).h(first) + qjr.Circuit.repeat(body, 3)


def _states_held(fn, *args, donate=()):
    stats = jax.jit(fn, donate_argnums=donate).lower(*args).compile().memory_analysis()
    if stats is None:
        pytest.skip("this backend reports no memory analysis")
    state = 2**N * jnp.dtype(jnp.complex64).itemsize
    allocated = stats.temp_size_in_bytes + stats.output_size_in_bytes - stats.alias_size_in_bytes
    return allocated / state, stats, state


@pytest.mark.parametrize("kernels", ["xla", "pallas"])
def test_forward_holds_at_most_three_states(monkeypatch, kernels):
    monkeypatch.setenv(backend.ENV, kernels)
    c = _circuit(3 if kernels == "xla" else 4)
    p = jnp.zeros(c.n_params, jnp.float32)
    forward = lambda p: qjr.expval(c, qjr.Z(0) @ qjr.X(7), p)
    jaxpr = str(jax.make_jaxpr(forward)(p))
    assert ("qjaxrob_pallas_apply" in jaxpr) == (kernels == "pallas")
    held, _, _ = _states_held(forward, p)
    assert held <= 3 + SLACK
    if kernels == "xla":  # (interpret mode's loop carries one more state; see above)
        held, stats, state = _states_held(lambda p: qjr.statevector(c, p), p)
        assert stats.output_size_in_bytes == state  # the returned state is one of them
        assert held <= 3 + SLACK


@pytest.mark.parametrize("kernels", [(apply_matrix, apply_diagonal),
                                     (pallas.apply_matrix, pallas.apply_diagonal)],
                         ids=["xla", "pallas"])
def test_donated_state_is_updated_in_place(kernels):
    km, kd = kernels
    u2 = jnp.eye(4, dtype=jnp.complex64)
    u1 = jnp.eye(2, dtype=jnp.complex64)
    d = jnp.ones(4, jnp.complex64)

    def layer(s):
        s = km(s, u1, (3,))
        s = km(s, u2, (N - 1, 0))
        return kd(s, d, (5, 6))

    s0 = jax.ShapeDtypeStruct((2,) * N, jnp.complex64)
    held, stats, state = _states_held(layer, s0, donate=(0,))
    assert stats.alias_size_in_bytes == state  # the output reuses the donated input
    assert held <= 3 + SLACK
