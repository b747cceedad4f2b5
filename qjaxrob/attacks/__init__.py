"""Attacks on distributed QML: evasion (FGSM/PGD, state-level), gradient inversion,
adversarial cut fragments, Byzantine client behaviours."""
