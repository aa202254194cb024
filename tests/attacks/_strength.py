"""Shared by the strength tests: the suite's attack vs ART's on the same digits images."""

from __future__ import annotations

import numpy as np
import torch

from attacks import get_attack
from attacks.art_adapter import art_classifier, run_attack
from attacks.catalog import default_params
from bench.cache import Cache, default_cache_dir
from bench.metrics import perturbation_norms
from bench.models import classify
from bench.runner import trained_model

CPU = torch.device("cpu")


def undefended(digits):
    return trained_model(digits, "none", {}, 0, CPU, Cache(default_cache_dir()), False).module


def compare(name: str, model, digits, n: int) -> dict[str, dict]:
    """``{attack name: {"success", "norms", "x_adv"}}`` for ``name`` and ``name-art``."""
    x, y = digits.x_test[:n], digits.y_test[:n]
    clean = classify(model, x, CPU)
    right = clean == y
    out = {}
    for attack in (name, f"{name}-art"):
        spec = get_attack(attack)
        estimator = art_classifier(model, digits.input_shape, digits.num_classes, CPU)
        x_adv = run_attack(spec, default_params(spec, "digits"), estimator, x, y, seed=0, device=CPU)
        fooled = classify(model, x_adv, CPU) != clean
        out[attack] = {"success": float((fooled & right).sum() / right.sum()), "fooled": fooled,
                       "norms": perturbation_norms(x, x_adv), "x_adv": x_adv}
    return out
