"""One test per error path: the documented qjaxrob.errors class, with the value named."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qjaxrob as qjr
from qjaxrob.errors import (
    DensityMatrixOnlyError,
    DtypeError,
    MatrixError,
    ObservableError,
    ParameterError,
    ProbabilityError,
    QjrError,
    QjrTypeError,
    UnknownGateError,
    WireError,
)


def test_hierarchy():
    assert issubclass(WireError, ValueError) and issubclass(QjrTypeError, TypeError)
    assert issubclass(MatrixError, QjrError)


def test_zero_qubits():
    with pytest.raises(WireError, match="n_qubits=0"):
        qjr.Circuit(0)


def test_non_int_qubit_count():
    with pytest.raises(QjrTypeError, match=re.escape("2.5")):
        qjr.Circuit(2.5)


def test_wire_out_of_range():
    with pytest.raises(WireError, match="wire 3 out of range for a 3-qubit circuit"):
        qjr.Circuit(3).h(3)


def test_negative_wire():
    with pytest.raises(WireError, match="wire -1 is negative"):
        qjr.Circuit(3).cnot(-1, 0)


def test_repeated_wire():
    with pytest.raises(WireError, match=re.escape("repeated wire in (1, 1)")):
        qjr.Circuit(3).cz(1, 1)


def test_unknown_gate():
    with pytest.raises(UnknownGateError, match="'foo'"):
        qjr.Circuit(1).gate("foo", 0)


def test_wrong_number_of_angles():
    with pytest.raises(ParameterError, match="takes 1 angle"):
        qjr.Circuit(1).gate("rx", 0)


def test_unitary_wrong_shape():
    with pytest.raises(MatrixError, match=re.escape("must have shape (4, 4), got (2, 2)")):
        qjr.Circuit(2).unitary(np.eye(2), (0, 1))


def test_non_unitary_matrix():
    with pytest.raises(MatrixError, match="not unitary: max .* = 1"):
        qjr.Circuit(1).unitary(np.array([[1, 1], [0, 1]]), 0)


def test_traced_angle_is_rejected_with_a_hint():
    with pytest.raises(QjrTypeError, match="qjr.param"):
        jax.jit(lambda t: qjr.Circuit(1).rx(0, t))(0.1)


def test_angle_expression_of_a_non_angle_type():
    """Products of angles are expressions now; a string or array operand is still refused."""
    with pytest.raises(QjrTypeError, match="'a'"):
        qjr.param(0) * qjr.inp(0) * "a"
    with pytest.raises(QjrTypeError, match="numpy.absolute"):
        np.abs(qjr.param(0) * qjr.inp(0))


def test_negative_param_index():
    with pytest.raises(ParameterError, match="-2"):
        qjr.param(-2)


def test_params_wrong_length():
    c = qjr.Circuit(1).rx(0, qjr.param(1))
    with pytest.raises(ParameterError, match="params of length 2, got 3"):
        qjr.statevector(c, jnp.zeros(3))


def test_params_missing():
    c = qjr.Circuit(1).rx(0, qjr.param(0))
    with pytest.raises(ParameterError, match="params of length 1, got None"):
        qjr.expval(c, qjr.Z(0))


def test_params_wrong_rank():
    c = qjr.Circuit(1).rx(0, qjr.param(0))
    with pytest.raises(ParameterError, match=re.escape("shape (2, 1)")):
        qjr.statevector(c, jnp.zeros((2, 1)))


def test_x_wrong_length():
    c = qjr.Circuit(1).rx(0, qjr.inp(0))
    with pytest.raises(ParameterError, match="x of length 1, got 2"):
        qjr.probs(c, None, jnp.zeros(2))


def test_complex_params():
    c = qjr.Circuit(1).rx(0, qjr.param(0))
    with pytest.raises(ParameterError, match="complex"):
        qjr.statevector(c, jnp.zeros(1, jnp.complex64))


def test_bad_dtype():
    with pytest.raises(DtypeError, match="float32"):
        qjr.statevector(qjr.Circuit(1), dtype=jnp.float32)


def test_probability_outside_unit_interval():
    with pytest.raises(ProbabilityError, match="got 1.5"):
        qjr.Circuit(1).depolarizing(0, 1.5)


def test_non_cptp_kraus():
    with pytest.raises(MatrixError, match="not trace preserving"):
        qjr.Circuit(1).kraus([np.eye(2), np.eye(2)], 0)


def test_channel_in_statevector_mode():
    with pytest.raises(DensityMatrixOnlyError, match="'bit_flip' on wires \\(0,\\)"):
        qjr.statevector(qjr.Circuit(1).bit_flip(0, 0.1))


def test_observable_wire_out_of_range():
    with pytest.raises(WireError, match="observable wire 2 out of range"):
        qjr.expval(qjr.Circuit(2), qjr.Z(2))


def test_bad_pauli_letter():
    with pytest.raises(ObservableError, match="'ZQ'"):
        qjr.pauli("ZQ")


def test_non_hermitian_observable():
    with pytest.raises(ObservableError, match="not Hermitian"):
        qjr.expval(qjr.Circuit(1), qjr.X(0) @ qjr.Y(0))


def test_shots_without_key():
    with pytest.raises(ParameterError, match="key"):
        qjr.expval(qjr.Circuit(1), qjr.Z(0), shots=10)


def test_bad_shots():
    with pytest.raises(ParameterError, match="got 0"):
        qjr.sample(jax.random.key(0), qjr.Circuit(1), 0)


def test_bad_diff_method():
    with pytest.raises(ParameterError, match="'magic'"):
        qjr.expval(qjr.Circuit(1), qjr.Z(0), diff="magic")


def test_concatenating_different_widths():
    with pytest.raises(WireError, match="2-qubit circuit with a 3-qubit"):
        qjr.Circuit(2) + qjr.Circuit(3)


def test_bad_repeat_count():
    with pytest.raises(ParameterError, match="got 0"):
        qjr.Circuit.repeat(qjr.Circuit(1).h(0), 0)


def test_probs_wire_out_of_range():
    with pytest.raises(WireError, match="wire 5"):
        qjr.probs(qjr.Circuit(2), wires=(5,))


def test_complex128_without_x64_is_refused_not_downcast():
    import subprocess
    import sys

    code = (
        "import jax.numpy as jnp, qjaxrob as qjr\n"
        "try:\n    qjr.statevector(qjr.Circuit(1), dtype=jnp.complex128)\n"
        "except qjr.errors.DtypeError as e:\n    print('refused:', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"JAX_ENABLE_X64": "0", "PATH": "", "JAX_PLATFORMS": "cpu"})
    assert "refused: dtype complex128 needs 64-bit JAX" in out.stdout, out.stderr


def test_output_errors_are_value_errors():
    from qjaxrob.errors import CheckpointError, LockError, OutputError

    for cls in (OutputError, CheckpointError, LockError):
        assert issubclass(cls, ValueError) and issubclass(cls, QjrError)
    assert issubclass(CheckpointError, OutputError) and issubclass(LockError, OutputError)


@pytest.mark.parametrize("module, call", [
    ("sklearn.datasets", lambda: qjr.qml.data.iris()),
    ("flwr", lambda: __import__("qjaxrob.federated.flower", fromlist=["x"])._flwr()),
])
def test_a_missing_extra_names_what_to_install(monkeypatch, module, call):
    from qjaxrob.errors import MissingDependencyError

    monkeypatch.setitem(__import__("sys").modules, module, None)  # import fails
    with pytest.raises(MissingDependencyError, match=r"needs \w+: pip install 'qjaxrob\[\w+\]'"):
        call()
