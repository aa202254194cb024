"""GridSpec: what ``bench run`` and ``bench.benchmark`` both build, parsed by the same helpers,
checked before torch, and crossed into the cells the runner runs."""

import dataclasses

import pytest

from bench.errors import BenchError
from bench.runner import make_grid
from bench.spec import DEFAULT_ATTACKS, UNDEFENDED, GridSpec, budgets, names
from bench.user_model import UserModel


def test_names_take_comma_lists_sequences_and_repeated_options():
    assert names("fgsm, pgd,,fgsm") == ("fgsm", "pgd")
    assert names(["fgsm", "pgd"]) == names(("fgsm,pgd",)) == names(("fgsm", " pgd ")) == ("fgsm", "pgd")
    assert names(()) == names("") == ()


def test_budgets_take_numbers_strings_and_sequences():
    assert budgets(None) == () and budgets(0.1) == (0.1,) and budgets(1) == (1.0,)
    assert budgets("0.1,0.3") == budgets(("0.1", "0.3")) == budgets([0.1, 0.3]) == (0.1, 0.3)
    with pytest.raises(BenchError, match="--eps 'big' is not a number"):
        budgets(("0.1,big",))


def test_the_spec_keeps_what_it_was_given_as_tuples_and_is_hashable():
    spec = GridSpec(datasets="digits", attacks=["fgsm,pgd"], eps=0.1, defense_options={"epochs": "1"})
    assert spec.datasets == ("digits",) and spec.attacks == ("fgsm", "pgd") and spec.eps == (0.1,)
    assert spec.defense_options == (("epochs", "1"),) and spec.defenses == (UNDEFENDED,)
    assert GridSpec().attacks == DEFAULT_ATTACKS
    assert hash(spec) == hash(dataclasses.replace(spec))
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.samples = 1


@pytest.mark.parametrize("change, message", [
    ({"datasets": "imagenet"}, "unknown dataset 'imagenet'"),
    ({"defenses": "dundy"}, "did you mean 'dundi'?"),
    ({"attacks": "pgdd"}, "did you mean 'pgd'?"),
    ({"threat_models": "grey"}, "unknown threat model 'grey'"),
    ({"eps": 1.5}, "outside (0, 1]"),
    ({"samples": 0}, "--samples must be at least 1"),
    ({"attacks": "square", "threat_models": "whitebox"}, "attack 'square' runs under threat model blackbox"),
    ({"attacks": "strong", "threat_models": "transfer"}, "--attack strong is a white-box attack set"),
])
def test_check_is_one_line_per_problem(change, message):
    with pytest.raises(BenchError) as raised:
        GridSpec(**change).check()
    assert message in str(raised.value)


def test_skipped_names_the_attacks_left_out_but_not_attack_sets():
    spec = GridSpec(attacks="fgsm,square,strong", threat_models="whitebox,blackbox")
    assert spec.skipped() == {"fgsm": ["blackbox"], "square": ["whitebox"]}


def test_the_default_grid_runs_strong_under_whitebox_only():
    cells = make_grid(GridSpec())
    assert [(cell.attack, cell.threat_model.value) for cell in cells] == [
        (attack, threat) for attack in ("fgsm", "bim", "deepfool", "jsma", "pgd")
        for threat in ("whitebox", "transfer")] + [
        ("apgd-ce", "whitebox"), ("apgd-t", "whitebox"), ("square-scores", "whitebox")]
    assert {(cell.dataset, cell.defense, cell.samples, cell.seed, cell.eps) for cell in cells} == {
        ("digits", UNDEFENDED, 200, 0, None)}


def test_a_users_model_gets_the_undefended_models_cells_in_its_place():
    user = UserModel(name="mine", model="memory:Mine", model_sha256="0" * 64)
    spec = GridSpec(defenses=(), attacks="fgsm,strong", user_model=user)
    cells = make_grid(spec)
    undefended = make_grid(dataclasses.replace(spec, defenses=(UNDEFENDED,), user_model=None))
    assert [(c.defense, c.user_model) for c in cells] == [("mine", user)] * len(undefended)
    assert [dataclasses.replace(c, defense=UNDEFENDED, user_model=None) for c in cells] == undefended
