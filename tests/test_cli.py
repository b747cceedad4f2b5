"""The qjaxrob command line runs and reports what it computed."""

import re

import numpy as np
import pytest

import qjaxrob as qjr
from qjaxrob.cli import main
from reference import expval_ref


def test_simulate_reports_value_gradient_and_times(capsys):
    assert main(["simulate", "--qubits", "3", "--layers", "1", "--grad", "--repeats", "1",
                 "--dtype", "complex128"]) == 0
    out = capsys.readouterr().out
    assert "3 qubits, 1 layers, 6 params" in out
    assert re.search(r"first call \(trace \+ compile \+ run\): [\d.]+ ms", out)
    assert "gradient (backprop): 6 entries" in out
    # the printed value is the real <Z0> of the ansatz at the CLI's seeded parameters
    import jax
    import jax.numpy as jnp

    value = float(re.search(r"<Z0> = (-?[\d.]+)", out).group(1))
    params = jax.random.uniform(jax.random.split(jax.random.key(0))[0], (6,), jnp.float64,
                                -np.pi, np.pi)
    c = qjr.qml.hardware_efficient(3, 1)
    assert value == pytest.approx(expval_ref(c, qjr.Z(0), np.asarray(params)), abs=1e-9)


def test_simulate_batched(capsys):
    assert main(["simulate", "--qubits", "2", "--layers", "1", "--batch", "4", "--repeats", "1"]) == 0
    assert "mean <Z0> over 4 inputs" in capsys.readouterr().out


def test_unknown_command_exits_nonzero():
    with pytest.raises(SystemExit):
        main(["bogus"])
