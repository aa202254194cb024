"""Red flags (bench/flags.py): each flag on tables that show its symptom, none on a sound
evaluation, and for real on digits: a model whose softmax saturates (the gradient masking of
defensive distillation) is flagged, the undefended model is not."""

import dataclasses
import json

import pandas as pd
import pytest
import torch
from torch import nn

import defenses
from attacks import ThreatModel
from bench.cache import config_hash
from bench.flags import FLAG_COLUMNS, FLAGS, LARGE_EPS, SANITY_DIR, red_flags, sanity_cells
from bench.runner import Cell, Settings, make_grid, run_grid
from bench.spec import GridSpec
from defenses import Defense, FitContext


def _row(attack, eps, robust, threat="whitebox", norm="linf", steps=None, **extra):
    params = {"eps": eps} if steps is None else {"eps": eps, "max_iter": steps}
    return {"dataset": "digits", "defense": "d", "attack": attack, "threat_model": threat, "eps": eps,
            "norm": norm, "robust_accuracy": robust, "clean_accuracy": 0.95, "n_eval": 200, "seed": 0,
            "attack_params": json.dumps(params), "defense_rate": 0.0, "n_adversarial": 150,
            "forward_predict_agreement": 1.0, "cell_key": f"{attack}-{threat}-{eps}"} | extra


def _sound() -> list[dict]:
    """What an evaluation without symptoms looks like: stronger attacks and budgets do better."""
    return [
        _row("fgsm", 0.1, 0.60, steps=None), _row("bim", 0.1, 0.40, steps=20),
        _row("pgd", 0.1, 0.35, steps=40), _row("pgd", 0.3, 0.05, steps=40),
        _row("pgd", LARGE_EPS, 0.0, steps=40, check="large-eps"),
        _row("pgd-4x-steps", 0.3, 0.04, steps=160, check="more-steps"),
        _row("fgsm", 0.3, 0.30, threat="transfer"), _row("square", 0.3, 0.10, threat="blackbox"),
        _row("deepfool", float("nan"), 0.0, norm="l2"), _row("deepfool", 1.0, 0.20, norm="l2"),
        _row("hopskipjump", float("nan"), 0.01, threat="blackbox", norm="l2"),
    ]


def test_a_sound_evaluation_raises_nothing():
    found = red_flags(pd.DataFrame(_sound()))
    assert list(found.columns) == FLAG_COLUMNS
    assert found.empty, found.to_string()


@pytest.mark.parametrize("flag, change, evidence", [
    ("blackbox-beats-whitebox", _row("square", 0.3, 0.0, threat="blackbox"), "blackbox square@0.3"),
    ("blackbox-beats-whitebox", _row("hopskipjump", 1.0, 0.05, threat="blackbox", norm="l2"),
     "< 0.200 of the best white-box attack (whitebox deepfool@1)"),
    ("accuracy-rises-with-eps", _row("pgd", 0.2, 0.01, steps=40), "whitebox pgd@0.3 leaves 0.050 > 0.010"),
    ("large-eps-survives", _row("pgd", LARGE_EPS, 0.30, steps=40, check="large-eps"),
     "leaves robust accuracy 0.300"),
    ("more-steps-help", _row("pgd-4x-steps", 0.3, 0.20, steps=160, check="more-steps"), "(160 steps)"),
    ("more-steps-help", _row("fgsm", 0.1, 0.20), "whitebox bim@0.1 (20 steps) leaves 0.400 > 0.200"),
    ("forward-predict-disagree", _row("fgsm", 0.1, 0.60, forward_predict_agreement=0.95), "95.0%"),
    ("forward-predict-disagree", _row("fgsm", 0.1, 0.60, defense_rate=0.4), "40.0% of the 150 examples"),
    # DunDi on mnist-subset: C&W-L2 leaves 0.97 where PGD leaves 0.00 (clean 0.95 here).
    ("minimal-fails-where-bounded-succeeds", _row("deepfool", float("nan"), 0.90, norm="l2"),
     "whitebox deepfool (no budget) leaves correct 170 of the 180 images whitebox pgd@0.3 breaks"),
    ("zero-gradients", _row("fgsm", 0.1, 0.60, probe_zero_gradients=30, probe_n=200), "on 30 of 200"),
    ("probability-outputs", _row("fgsm", 0.1, 0.60, probe_probability_rows=200, probe_n=200), "probabilities"),
    ("randomized-defense", _row("fgsm", 0.1, 0.60, probe_randomized=3, probe_n=200, probe_logits_differ=200),
     "changed the decision on 3"),
])
def test_each_flag_names_its_evidence(flag, change, evidence):
    rows = [row for row in _sound() if (row["attack"], row["threat_model"], row["eps"], row["norm"])
            != (change["attack"], change["threat_model"], change["eps"], change["norm"])]
    found = red_flags(pd.DataFrame([*rows, change]))
    assert flag in set(found["flag"]), found.to_string()
    assert any(evidence in line for line in found[found["flag"] == flag]["evidence"]), found.to_string()
    assert found["cells"].str.len().gt(0).all(), found.to_string()  # every finding names its cells


def test_differences_within_sampling_noise_are_not_flags():
    square = [i for i, row in enumerate(_sound()) if row["attack"] == "square"][0]
    rows = _sound()
    rows[square]["robust_accuracy"] = 0.03  # 1 point below the best white-box 0.04, on 200 images
    assert red_flags(pd.DataFrame(rows)).empty
    small = [dict(row, n_eval=50) for row in _sound()]
    small[square]["robust_accuracy"] = 0.04 - 1.5 / 50  # 1.5 of 50 images: below the 2-image margin
    assert red_flags(pd.DataFrame(small)).empty
    assert set(FLAGS) == {"blackbox-beats-whitebox", "accuracy-rises-with-eps", "large-eps-survives",
                          "more-steps-help", "forward-predict-disagree", "minimal-fails-where-bounded-succeeds",
                          "zero-gradients", "probability-outputs", "randomized-defense"}


def test_a_minimal_attack_missing_a_few_images_is_a_weak_setting_not_a_flag():
    # The undefended model on mnist-subset: C&W-L2 leaves 0.24 where PGD leaves 0.00 (25% of what PGD breaks).
    rows = [row for row in _sound() if row["attack"] != "deepfool"]
    rows.append(_row("deepfool", float("nan"), 0.24, norm="l2"))
    assert "minimal-fails-where-bounded-succeeds" not in set(red_flags(pd.DataFrame(rows))["flag"])


def test_sanity_cells_are_two_per_defense_and_leave_asked_cells_alone():
    asked = [Cell("digits", name, "fgsm", ThreatModel.TRANSFER) for name in ("none", "dundi")]
    asked.append(Cell("digits", "none", "pgd", ThreatModel.WHITEBOX, eps=LARGE_EPS))
    extra = sanity_cells(asked)
    assert sorted((c.defense, c.check, c.eps) for c in extra) == [
        ("dundi", "large-eps", LARGE_EPS), ("dundi", "more-steps", None), ("none", "more-steps", None)]
    assert all(c.attack == "pgd" and c.threat_model is ThreatModel.WHITEBOX for c in extra)
    # A check changes the key; no check keeps the key cells had before checks existed.
    assert dataclasses.replace(extra[0], check="").key != extra[0].key
    legacy = ("dataset", "defense", "attack", "threat_model", "eps", "samples", "seed", "defense_options")
    assert asked[0].key == config_hash("cell", {name: getattr(asked[0], name) for name in legacy})


class _Saturated(nn.Module):
    """The undefended model with its logits scaled by 10^4: same decisions, but the softmax is
    exactly one-hot in float32, so cross-entropy gradients vanish (defensive distillation's
    masking, in its purest form)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) * 1e4


def _saturated_fit(model: nn.Module, data, options: dict, ctx: FitContext) -> None:
    model.inner.load_state_dict(ctx.undefended().state_dict())


@pytest.fixture(scope="module")
def flagged_run(tmp_path_factory):
    none = defenses.REGISTRY["none"]
    saturated = Defense(name="saturated", summary="test: saturated softmax", reference="-",
                        build=lambda data, options: _Saturated(none.build(data, none.defaults(data))),
                        fit=_saturated_fit, defaults=lambda data: {})
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(defenses.REGISTRY, "saturated", saturated)
        cells = make_grid(GridSpec(["digits"], ["none", "saturated"], ["fgsm", "pgd", "square"],
                                   ["whitebox", "blackbox"], samples=48))
        out = tmp_path_factory.mktemp("flags")
        table = run_grid(cells, Settings(out_dir=out, device="cpu", progress=False)).table
        run_grid(sanity_cells(cells), Settings(out_dir=out / SANITY_DIR, device="cpu", progress=False))
    return table, red_flags(table, out)


def test_saturated_softmax_is_flagged_and_the_undefended_model_is_not(flagged_run):
    table, found = flagged_run
    assert found[found["defense"] == "none"].empty, found.to_string()
    flags = found[found["defense"] == "saturated"]
    assert "blackbox-beats-whitebox" in set(flags["flag"]), found.to_string()
    square = flags[flags["flag"] == "blackbox-beats-whitebox"]["evidence"].iloc[0]
    assert "blackbox square@0.3" in square and "images broken by it and by no white-box attack" in square
    pgd = table[(table["defense"] == "saturated") & (table["attack"] == "pgd") & (table["eps"] == 0.3)]
    assert pgd["robust_accuracy"].iloc[0] > 0.8  # the white-box number a masked defense reports
    assert table[(table["defense"] == "saturated") & (table["threat_model"] == "blackbox")][
        "robust_accuracy"].iloc[0] < 0.2  # what it is worth
