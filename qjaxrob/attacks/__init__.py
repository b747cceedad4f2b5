"""Attacks on distributed QML: evasion (FGSM/PGD, state-level), gradient inversion,
adversarial cut fragments, Byzantine client behaviours.

Submodules: ``evasion`` (``fgsm``, ``pgd``, ``attack_model``, ``robust_accuracy_curve``),
``state`` (learned near-identity unitaries after the encoding, infidelity budget).
"""

from qjaxrob.attacks import evasion, state
from qjaxrob.attacks.evasion import (
    AttackResult,
    attack_model,
    fgsm,
    pgd,
    robust_accuracy_curve,
)
from qjaxrob.attacks.state import (
    StateAttackResult,
    attacked_model,
    perturbation_circuit,
    state_attack,
    state_attack_model,
    state_robust_accuracy_curve,
)
