"""Attacks on distributed QML: evasion (FGSM/PGD, state-level), gradient inversion,
adversarial cut fragments, Byzantine client behaviours.

Submodules: ``evasion`` (``fgsm``, ``pgd``, ``attack_model``, ``robust_accuracy_curve``),
``state`` (learned near-identity unitaries after the encoding, infidelity budget),
``inversion`` (a package: gradient matching with vmapped or pooled restarts for a VQC or
any differentiable loss, iDLG labels, the analytic trigonometric solve), ``optimize`` (the
best-iterate optimiser scan every attack uses), ``fragments``
(uniform and term-dependent perturbations of a wire cut's prepared states, the
physicality detector), ``fragment_poisoning`` (training a cut classifier while one
fragment's executor follows an adversarial policy, or the server post-processes
dishonestly), ``poisoning`` (training-time QFL attacks: model replacement, circuit-level
backdoors).
"""

from qjaxrob.attacks import evasion, fragments, inversion, optimize, state
from qjaxrob.attacks import byzantine
from qjaxrob.attacks.evasion import (
    AttackResult,
    attack_model,
    fgsm,
    pgd,
    robust_accuracy_curve,
)
from qjaxrob.attacks.fragments import (
    compare_uncut,
    detect,
    fragment_attack,
    fragment_model,
)
from qjaxrob.attacks.inversion import (
    InversionResult,
    analytic_invert,
    fourier_tower_encoding,
    invert,
)
from qjaxrob.attacks.state import (
    StateAttackResult,
    attacked_model,
    perturbation_circuit,
    state_attack,
    state_attack_model,
    state_robust_accuracy_curve,
)

# ---- training-time attacks on cut classifiers ---------------------------------------------
from qjaxrob.attacks import fragment_poisoning
from qjaxrob.attacks.fragment_poisoning import Policy as FragmentPolicy
from qjaxrob.attacks.fragment_poisoning import train as poison_cut_training

# ---- training-time attacks on quantum federated learning ----
from qjaxrob.attacks import poisoning
from qjaxrob.attacks.poisoning import (
    CircuitBackdoor,
    ModelReplacement,
    attack_metrics,
    triggered_model,
)
