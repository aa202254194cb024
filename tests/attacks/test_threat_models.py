"""Every registered attack against every built-in defense on digits, under each threat model
it supports (one small grid, the defenses shared through the session cache), and the
ε sweep of minimal-perturbation attacks computed from one run."""

import json

import numpy as np
import pytest

import attacks
import defenses
from attacks import ThreatModel
from attacks.art_adapter import BLACKBOX_OUTPUT
from bench.families import FAMILIES
from bench.results import ResultsStore
from bench.runner import Settings, make_grid, run_grid
from bench.spec import GridSpec

BUILT_IN_ATTACKS = sorted(name for name, spec in attacks.REGISTRY.items() if spec.origin == "built-in")
BUILT_IN_DEFENSES = sorted(name for name, d in defenses.REGISTRY.items() if d.origin == "built-in")
SAMPLES = 8


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    out = tmp_path_factory.mktemp("every-attack")
    cells = make_grid(GridSpec(["digits"], BUILT_IN_DEFENSES, BUILT_IN_ATTACKS, [t.value for t in ThreatModel],
                               samples=SAMPLES))
    table = run_grid(cells, Settings(out_dir=out, device="cpu", progress=False)).table
    return table, ResultsStore(out)


def test_every_attack_meets_every_defense_under_each_of_its_threat_models(grid):
    table, _ = grid
    expected = {(defense, name, threat.value) for defense in BUILT_IN_DEFENSES for name in BUILT_IN_ATTACKS
                for threat in attacks.REGISTRY[name].threat_models}
    assert set(zip(table["defense"], table["attack"], table["threat_model"])) == expected
    assert len(table) == len(expected) and (table["n_eval"] == SAMPLES).all()
    assert table[["clean_accuracy", "robust_accuracy"]].notna().all().all()


def test_attacks_break_the_undefended_model_within_their_budget(grid):
    table, store = grid
    undefended = table[table["defense"] == "none"]
    # JSMA changes at most 10% of the pixels towards a random class: it breaks some images, not all.
    jsma = undefended["attack"] == "jsma"
    assert (undefended["robust_accuracy"][~jsma] <= undefended["clean_accuracy"][~jsma] - 0.5).all(), \
        undefended[["attack", "threat_model", "clean_accuracy", "robust_accuracy"]].to_string()
    assert (undefended["robust_accuracy"][jsma] < undefended["clean_accuracy"][jsma]).all()
    for _, row in table[table["attack"].map(lambda name: attacks.REGISTRY[name].bounded)].iterrows():
        assert store.arrays(row["cell_key"])["linf"].max() <= row["eps"] + 1e-5, row["attack"]


def test_blackbox_attacks_query_the_decision_and_count_their_queries(grid):
    table, _ = grid
    blackbox = table[table["threat_model"] == "blackbox"]
    assert set(blackbox["attack"]) == {"square", "hopskipjump"}
    assert (blackbox["queries_per_image"] > 0).all()
    # The attacked decision is the source, so nothing that fooled it can be "defended".
    assert ((blackbox["defense_rate"] == 0) | blackbox["defense_rate"].isna()).all()
    outputs = blackbox.groupby("defense")["blackbox_output"].unique().map(list).to_dict()
    assert outputs["none"] == [BLACKBOX_OUTPUT[False]]
    if "dundi" in outputs:  # DunDi decides with its two-step predict: that is what is queried
        assert outputs["dundi"] == [BLACKBOX_OUTPUT[True]]
    assert table[table["threat_model"] != "blackbox"]["queries_per_image"].isna().all()
    logits_only = table[table["blackbox_output"].fillna("").ne(BLACKBOX_OUTPUT[True])
                        & table["defense"].isin(set(blackbox.loc[blackbox["blackbox_output"]
                                                                 == BLACKBOX_OUTPUT[False], "defense"]))]
    assert (logits_only["forward_predict_agreement"] == 1.0).all()


def test_transfer_examples_are_the_undefended_models_whitebox_ones(grid):
    table, store = grid
    for name in ("pgd", "autoattack", "jsma"):
        source = table[(table["defense"] == "none") & (table["attack"] == name)
                       & (table["threat_model"] == "whitebox")].iloc[0]
        for _, row in table[(table["attack"] == name) & (table["threat_model"] == "transfer")].iterrows():
            np.testing.assert_array_equal(store.arrays(row["cell_key"])["gallery_x_adv"],
                                          store.arrays(source["cell_key"])["gallery_x_adv"])
            assert row["source_model"] == "none"


def test_minimal_attack_sweep_scores_one_run_at_each_budget_of_its_norm(tmp_path):
    cells = make_grid(GridSpec(["digits"], ["none"], ["deepfool", "fgsm"], ["whitebox"], eps=[0.1, 0.3],
                               samples=SAMPLES, eps_sweep=True))
    l2_grid = FAMILIES["digits"].sweep["l2"]
    assert sorted((c.attack, c.eps or 0) for c in cells) == sorted(
        [("fgsm", 0.1), ("fgsm", 0.3), ("deepfool", 0)] + [("deepfool", e) for e in l2_grid])
    table = run_grid(cells, Settings(out_dir=tmp_path, device="cpu", progress=False)).table
    deepfool = table[table["attack"] == "deepfool"].sort_values("eps", na_position="last")
    assert (deepfool["norm"] == "l2").all() and deepfool["attack_params"].nunique() == 1
    assert deepfool["attack_seconds"].nunique() == 1  # one attack run (cached), scored per budget
    store = ResultsStore(tmp_path)
    unbudgeted = store.arrays(deepfool.iloc[-1]["cell_key"])
    for _, row in deepfool.iloc[:-1].iterrows():
        within = unbudgeted["l2"] <= row["eps"] + 1e-6
        expected = np.where(within, unbudgeted["pred_adv"], unbudgeted["pred_clean"]) == unbudgeted["y"]
        assert row["robust_accuracy"] == pytest.approx(expected.mean())
        assert store.arrays(row["cell_key"])["l2"].max() <= row["eps"] + 1e-6
    curve = deepfool["robust_accuracy"].to_numpy()
    assert (np.diff(curve[:-1]) <= 0).all() and curve[-1] <= curve[-2]
    assert json.loads(deepfool.iloc[0]["attack_params"]) == json.loads(deepfool.iloc[-1]["attack_params"])
