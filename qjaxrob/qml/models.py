"""Variational quantum classifiers as ``equinox.Module`` s.

A :class:`VQC` maps ONE example ``x`` (shape ``(n_features,)``) to class logits (shape
``(n_classes,)``); batch it with ``jax.vmap(model)(xs)``. Its array leaves (``params`` and
the optional post-processing ``weights``/``bias``) are what optimisers train; the circuit,
encoding and readout are static structure (so ``eqx.filter_jit`` compiles once per model
architecture, not per parameter value).

The circuit is ``encoding.circuit + ansatz`` (or, with ``reupload=L``, ``L`` repetitions
of ``encoding.circuit + ansatz`` as one ``lax.scan``), with an optional noise layer (one
channel on every wire) after the encoding and after the ansatz, simulated as a density
matrix (``mixed=True``).

Readout (``r`` is the readout vector, ``C`` the number of classes):

* ``"expval"``: ``r_k = <Z_w>`` for ``w`` in ``readout_wires``. Without post-processing,
  binary logits are ``scale * (r_0, -r_0) / 2`` (so ``P(class 0) = sigmoid(scale * <Z>)``:
  class 0 <-> |0>), and multi-class logits are ``scale * r`` (needs ``len(r) == C``).
* ``"probs"``: ``p`` = basis-state probabilities of ``readout_wires`` (``2**k`` outcomes);
  ``r_c = sum_{i mod C = c} p_i``. Without post-processing the logits are ``log r``
  (so ``softmax(logits) = r`` exactly).

With ``post=True`` the logits are ``weights @ r + bias`` (a trainable linear layer,
``weights`` of shape ``(C, len(r))``; readout vector length is ``len(readout_wires)`` for
``"expval"`` and ``C`` for ``"probs"``).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob.checks import check_dtype, check_positive_int, check_wires
from qjaxrob.ir.circuit import Circuit
from qjaxrob.errors import ParameterError
from qjaxrob.ir.noise import NOISE_CHANNELS
from qjaxrob.ir.noise import layer as noise_layer
from qjaxrob.ir.observables import Z
from qjaxrob.qml import ansatze
from qjaxrob.qml import encodings as enc
from qjaxrob.simulate import expval, probs

__all__ = ["VQC", "make_vqc", "NOISE_CHANNELS"]


def _noise_layer(n: int, noise) -> Circuit:
    """The ``noise = (channel, p)`` layer: that channel on every wire (``qjr.noise.layer``)."""
    name, p = noise
    return noise_layer(n, name, p)


def _check_classes(n_classes) -> int:
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise ParameterError(f"n_classes must be an int >= 2, got {n_classes!r}")
    return n_classes


class VQC(eqx.Module):
    """A variational quantum classifier: ``__call__(x) -> logits``, shape ``(n_classes,)``.

    Args:
        key: PRNG key for the initial parameters: ``params ~ U(-init_scale, init_scale)``,
            ``weights ~ N(0, 1/len(r))``, ``bias = 0``.
        encoding: an :class:`~qjaxrob.qml.encodings.Encoding` of ``n_features`` features.
        ansatz: a trainable ``Circuit`` on ``encoding.n_qubits`` wires (no ``qjr.inp``).
        n_classes: number of classes ``C >= 2``.
        readout: ``"expval"`` or ``"probs"`` (module docstring).
        readout_wires: wires read out; default: the last wire for binary ``"expval"``,
            all wires for multi-class ``"expval"`` with ``post`` (else the last ``C``), and
            the last ``ceil(log2 C)`` wires for ``"probs"``.
        post: add the trainable linear layer ``weights @ r + bias``.
        scale: logit scale when ``post=False``.
        reupload: if ``L >= 1``, data re-uploading with ``L`` layers of ``encoding + ansatz``.
        noise: ``(channel, p)`` with channel in ``NOISE_CHANNELS``: that channel on every
            wire after the encoding and after the ansatz (density-matrix simulation).
        dtype: complex simulation dtype; parameters use the matching real dtype.
    """

    params: jax.Array
    weights: jax.Array | None
    bias: jax.Array | None
    circuit: Circuit = eqx.field(static=True)
    encoding: enc.Encoding = eqx.field(static=True)
    n_classes: int = eqx.field(static=True)
    readout: str = eqx.field(static=True)
    readout_wires: tuple = eqx.field(static=True)
    scale: float = eqx.field(static=True)
    mixed: bool = eqx.field(static=True)
    dtype: np.dtype = eqx.field(static=True)

    def __init__(self, key, encoding, ansatz, n_classes, *, readout="expval",
                 readout_wires=None, post=True, scale=1.0, reupload=0, noise=None,
                 init_scale=math.pi, dtype=jnp.complex64):
        n = encoding.n_qubits
        if ansatz.n_qubits != n or ansatz.n_inputs:
            raise ParameterError(
                f"ansatz must act on the encoding's {n} qubits without inputs, got "
                f"n_qubits={ansatz.n_qubits}, n_inputs={ansatz.n_inputs}"
            )
        self.n_classes = c_ = _check_classes(n_classes)
        if readout not in ("expval", "probs"):
            raise ParameterError(f"readout must be 'expval' or 'probs', got {readout!r}")
        if readout_wires is None:
            if readout == "probs":
                k = max(1, math.ceil(math.log2(c_)))
            else:
                k = 1 if c_ == 2 else (n if post else c_)
            if k > n:
                raise ParameterError(f"{c_} classes need {k} readout wires, the circuit has {n}")
            readout_wires = tuple(range(n - k, n))
        self.readout_wires = check_wires(tuple(readout_wires), n, "readout wire")
        width = len(self.readout_wires) if readout == "expval" else c_
        if readout == "probs" and 2 ** len(self.readout_wires) < c_:
            raise ParameterError(f"{c_} classes need >= {c_} outcomes, got wires {readout_wires}")
        if readout == "expval" and not post and c_ > 2 and width != c_:
            raise ParameterError(f"{c_} classes need {c_} readout wires, got {readout_wires}")
        layer = (lambda c: c + _noise_layer(n, noise)) if noise is not None else (lambda c: c)
        if reupload:
            circuit = enc.reuploading(enc.Encoding(encoding.kind, encoding.n_features,
                                                   layer(encoding.circuit), encoding.pairs),
                                      layer(ansatz), reupload)
        else:
            circuit = layer(encoding.circuit) + layer(ansatz)
        self.circuit, self.encoding, self.readout = circuit, encoding, readout
        self.mixed = circuit.has_channels
        self.dtype = check_dtype(dtype)
        self.scale = float(scale)
        real = np.finfo(self.dtype).dtype
        k1, k2 = jax.random.split(key)
        self.params = jax.random.uniform(k1, (circuit.n_params,), real, -init_scale, init_scale)
        if post:
            self.weights = jax.random.normal(k2, (c_, width), real) / math.sqrt(width)
            self.bias = jnp.zeros((c_,), real)
        else:
            self.weights = self.bias = None

    def readout_vector(self, x):
        """The readout vector ``r`` for one example (module docstring)."""
        a = self.encoding.features(x)
        if self.readout == "expval":
            obs = [Z(w) for w in self.readout_wires]
            return expval(self.circuit, obs, self.params, a, mixed=self.mixed, dtype=self.dtype)
        p = probs(self.circuit, self.params, a, wires=self.readout_wires, mixed=self.mixed,
                  dtype=self.dtype)
        c = self.n_classes
        return jnp.zeros((c,), p.dtype).at[jnp.arange(p.shape[0]) % c].add(p)

    def __call__(self, x):
        """Logits for ONE example ``x`` of shape ``(n_features,)``; shape ``(n_classes,)``."""
        r = self.readout_vector(x)
        if self.weights is not None:
            return self.weights @ r + self.bias
        if self.readout == "probs":
            return jnp.log(jnp.maximum(r, jnp.finfo(r.dtype).tiny))
        if self.n_classes == 2:
            return self.scale * jnp.stack([r[0], -r[0]]) / 2
        return self.scale * r

    def predict_proba(self, x):
        """Class probabilities ``softmax(self(x))`` for one example, shape ``(n_classes,)``."""
        return jax.nn.softmax(self(x))


_ENCODINGS = {
    "angle": lambda f: enc.angle_encoding(f),
    "dense_angle": lambda f: enc.dense_angle_encoding(math.ceil(f / 2)),
    "iqp": lambda f: enc.iqp_encoding(f),
    "amplitude": lambda f: enc.amplitude_encoding(max(1, math.ceil(math.log2(f)))),
}
_ANSATZE = {
    "hardware_efficient": ansatze.hardware_efficient,
    "strongly_entangling": ansatze.strongly_entangling,
    "mps": ansatze.mps,
    "tree_tensor_network": ansatze.tree_tensor_network,
}


def make_vqc(key, n_features: int, n_classes: int, *, encoding: str = "angle",
             ansatz: str = "hardware_efficient", layers: int = 2, **kwargs) -> VQC:
    """A :class:`VQC` from names: ``encoding`` in ``angle, dense_angle, iqp, amplitude``
    (qubits: ``n_features``, ``ceil(n_features/2)``, ``n_features``, ``log2 n_features``),
    ``ansatz`` in ``hardware_efficient, strongly_entangling, mps, tree_tensor_network`` with
    ``layers`` layers (with ``reupload=True``: ``layers`` re-uploading layers of a one-layer
    ansatz). Other keyword arguments go to ``VQC``."""
    if encoding not in _ENCODINGS:
        raise ParameterError(f"encoding must be one of {tuple(_ENCODINGS)}, got {encoding!r}")
    if ansatz not in _ANSATZE:
        raise ParameterError(f"ansatz must be one of {tuple(_ANSATZE)}, got {ansatz!r}")
    e = _ENCODINGS[encoding](n_features)
    if e.n_features != n_features:
        raise ParameterError(
            f"{encoding} encoding needs n_features={e.n_features}, got {n_features}"
        )
    layers = check_positive_int(layers, "layers")
    reupload = layers if kwargs.pop("reupload", False) else 0
    a = _ANSATZE[ansatz](e.n_qubits, 1 if reupload else layers)
    return VQC(key, e, a, n_classes, reupload=reupload, **kwargs)
