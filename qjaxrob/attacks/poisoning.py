"""Training-time integrity attacks on quantum federated learning: model replacement and
circuit-level backdoors.

Both plug into :class:`qjaxrob.federated.FedConfig` like ``attacks.byzantine``:

* :class:`ModelReplacement` is a model-poisoning behaviour
  ``(updates, malicious, key) -> updates`` (``poison_updates``);
* :class:`CircuitBackdoor` is a data-poisoning behaviour ``(x, y, count, key) -> (x, y)``
  (``poison_data``) with ``trigger`` / ``target`` for ``backdoor_trigger`` /
  ``backdoor_target``.

Combined (backdoored local training, then the boosted update) they replace the global
model by the attacker's backdoored one. :func:`attack_metrics` reports clean accuracy and
the backdoor attack success rate (triggered inputs of other classes classified as the
target).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from qjaxrob.attacks.byzantine import stamp_fraction
from qjaxrob.checks import check_int, check_positive_int, check_probability, check_real
from qjaxrob.ir.circuit import Circuit
from qjaxrob.errors import ParameterError
from qjaxrob.qml.encodings import Encoding

__all__ = ["CircuitBackdoor", "ModelReplacement", "attack_metrics", "triggered_model"]


@dataclasses.dataclass(frozen=True)
class ModelReplacement:
    """Model replacement (Bagdasaryan et al., "How to backdoor federated learning",
    AISTATS 2020). With FedAvg over ``n_clients`` equally weighted clients and server
    learning rate ``server_lr`` (eta), a malicious client whose honest update (on its
    poisoned data) is ``u = G - X`` (global minus its local model ``X``) sends
    ``gamma * u`` with ``gamma = n_clients / server_lr``; the other updates roughly cancel
    and the next global model is ``~ X``.

    Constrain-and-scale: to stay under a server's norm check the attacker scales by
    ``min(gamma, norm_bound / ||u||)`` (``norm_bound`` None: no constraint), and with
    ``max_abs`` it clips every coordinate to ``[-max_abs, max_abs]`` (e.g. a public
    per-coordinate bound such as the physical gradient bound).
    """

    n_clients: int
    server_lr: float = 1.0
    norm_bound: float | None = None
    max_abs: float | None = None

    def __post_init__(self):
        check_positive_int(self.n_clients, "ModelReplacement n_clients")
        check_real(self.server_lr, "ModelReplacement server_lr", low=0.0, low_open=True)
        if self.norm_bound is not None:
            check_real(self.norm_bound, "ModelReplacement norm_bound", low=0.0)
        if self.max_abs is not None:
            check_real(self.max_abs, "ModelReplacement max_abs", low=0.0)

    @property
    def gamma(self) -> float:
        """The boost ``n_clients / server_lr``."""
        return self.n_clients / self.server_lr

    def __call__(self, updates, malicious, key):
        out = self.gamma * updates
        if self.norm_bound is not None:
            norm = jnp.linalg.norm(out, axis=-1, keepdims=True)
            out = out * jnp.minimum(1.0, self.norm_bound / jnp.maximum(norm, 1e-30))
        if self.max_abs is not None:
            out = jnp.clip(out, -self.max_abs, self.max_abs)
        return out


# input maps equivalent to a Pauli right after an angle-encoding rotation R_axis(s x) on |0>:
# P_axis R_axis(t) = -i R_axis(t + pi); X RY(t)|0> = RY(pi - t)|0>; Z RY(t)|0> = RY(-t)|0>;
# Y RX(t)|0> = -RX(pi - t)|0>; Z RX(t)|0> = RX(-t)|0> (equal up to a global phase).
_MAPS = {
    ("x", "x"): "shift", ("y", "y"): "shift",
    ("y", "x"): "reflect", ("x", "y"): "reflect",
    ("y", "z"): "negate", ("x", "z"): "negate",
}


@dataclasses.dataclass(frozen=True)
class CircuitBackdoor:
    """A circuit-level backdoor in a client's circuit ("Can QFL withstand circuit-level
    backdoors?", arXiv 2605.27416): when the trigger is present, Pauli ``gate``
    (``"x"`` = bit flip, ``"y"``, ``"z"``) acts on ``wires`` right after the angle
    encoding, and the malicious client labels those examples ``target``. It stamps the
    trigger on a random ``fraction`` of its examples (at least one).

    For an angle encoding a Pauli after the encoding rotation is an input map (up to a
    global phase): ``P_axis`` shifts the angle by ``pi``, the other two Paulis reflect
    (``t -> pi - t``) or negate it; :meth:`trigger` applies that map to one example (so
    federated training and ``FedConfig.backdoor_trigger`` need no circuit change), and
    :func:`triggered_model` builds the circuit with the gates inserted, which gives the
    same logits. Needs an ``"angle"`` encoding about ``x`` or ``y``.
    """

    encoding: Encoding
    wires: tuple
    target: int
    gate: str = "x"
    fraction: float = 0.5

    def __post_init__(self):
        enc = self.encoding
        if not isinstance(enc, Encoding) or enc.kind != "angle":
            raise ParameterError(f"CircuitBackdoor needs an angle encoding, got {enc!r}")
        wires = tuple(check_int(w, "CircuitBackdoor wire", minimum=0) for w in self.wires)
        if not wires or len(set(wires)) != len(wires) or max(wires) >= enc.n_qubits:
            raise ParameterError(f"CircuitBackdoor wires must be distinct wires of the "
                                 f"{enc.n_qubits}-qubit encoding, got {self.wires}")
        object.__setattr__(self, "wires", wires)
        if self.gate not in ("x", "y", "z"):
            raise ParameterError(f"CircuitBackdoor gate must be 'x', 'y' or 'z', got "
                                 f"{self.gate!r}")
        check_int(self.target, "CircuitBackdoor target", minimum=0)
        if check_probability(self.fraction, "CircuitBackdoor fraction") == 0.0:
            raise ParameterError("CircuitBackdoor fraction must be > 0")
        for w in wires:
            self._rule(w)

    def _rule(self, w):
        op = next(o for o in self.encoding.circuit.ops if o.wires == (w,))
        axis, angle = op.name[1:], op.angles[0]
        kind = _MAPS.get((axis, self.gate))
        if kind is None or angle.source != "inp" or angle.offset != 0.0:
            raise ParameterError(f"a {self.gate!r} trigger after {op.name}({angle}) on wire {w} "
                                 "is not an input map; use an angle encoding about x or y")
        return kind, angle.index, angle.scale

    def trigger(self, x):
        """One example ``x`` ``(n_features,)`` with the trigger (as an input map)."""
        for w in self.wires:
            kind, j, s = self._rule(w)
            v = x[j]
            new = {"shift": v + math.pi / s, "reflect": math.pi / s - v, "negate": -v}[kind]
            x = x.at[j].set(new)
        return x

    def gates(self, n_qubits: int) -> Circuit:
        """The trigger gates as a circuit on ``n_qubits`` wires."""
        c = Circuit(n_qubits)
        for w in self.wires:
            c = c.gate(self.gate, w)
        return c

    def __call__(self, x, y, count, key):
        return stamp_fraction(self, x, y, count, key)


def triggered_model(model, backdoor: CircuitBackdoor):
    """``model`` (a ``qml.VQC`` without re-uploading) with the trigger gates inserted right
    after its encoding: what a triggered input runs through."""
    enc_ops = backdoor.encoding.circuit.ops
    ops = model.circuit.ops
    if model.encoding != backdoor.encoding or ops[:len(enc_ops)] != enc_ops:
        raise ParameterError("triggered_model needs a VQC that starts with the backdoor's "
                             "encoding (no re-uploading)")
    n = model.circuit.n_qubits
    circuit = Circuit(n, enc_ops + backdoor.gates(n).ops + ops[len(enc_ops):])
    new = object.__new__(type(model))
    for f in dataclasses.fields(model):
        object.__setattr__(new, f.name, getattr(model, f.name))
    object.__setattr__(new, "circuit", circuit)
    return new


def attack_metrics(model, x, y, trigger=None, target=None) -> dict:
    """``clean_accuracy`` of ``model`` on ``(x, y)`` and, with a ``trigger`` (one example
    -> one example) and ``target``, ``attack_success_rate``: the fraction of triggered
    examples of other classes classified as ``target``."""
    x, y = jnp.asarray(x), jnp.asarray(y)
    pred = jnp.argmax(jax.vmap(model)(x), -1)
    out = {"clean_accuracy": float(jnp.mean(pred == y))}
    if trigger is not None:
        if target is None:
            raise ParameterError("attack_metrics needs the backdoor target with a trigger")
        other = y != target
        if not bool(jnp.any(other)):
            raise ParameterError(f"no test example outside the target class {target}")
        pt = jnp.argmax(jax.vmap(model)(jax.vmap(trigger)(x)), -1)
        out["attack_success_rate"] = float(jnp.sum((pt == target) & other) / jnp.sum(other))
    return out
