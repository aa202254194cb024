"""The suite's batched DeepFool (attacks/deepfool.py) is at least as strong as ART's on the same images."""

import numpy as np
import pytest

from attacks import get_attack

from ._strength import compare, undefended


@pytest.fixture(scope="module")
def model(digits):
    return undefended(digits)


def test_deepfool_is_at_least_as_strong_as_arts(model, digits):
    result = compare("deepfool", model, digits, n=64)
    ours, art = result["deepfool"], result["deepfool-art"]
    assert ours["success"] >= art["success"] and ours["success"] > 0.9
    # Minimal attack: mean L2 over the images both fool, not more than 5% above ART's.
    both = ours["fooled"] & art["fooled"]
    assert ours["norms"]["l2"][both].mean() <= 1.05 * art["norms"]["l2"][both].mean()


def test_each_implementation_has_its_own_cache_key_and_the_same_parameters():
    assert get_attack("deepfool").implementation and not get_attack("deepfool-art").implementation
    assert get_attack("deepfool").parameters == get_attack("deepfool-art").parameters


def test_deepfool_is_an_art_evasion_attack_on_the_pytorch_estimator(model, digits):
    from art.attacks.attack import EvasionAttack

    from attacks.art_adapter import art_classifier
    from attacks.deepfool import DeepFool

    attack = DeepFool(art_classifier(model, digits.input_shape, 10, _cpu()), max_iter=50, epsilon=0.02,
                      batch_size=8, verbose=False)
    assert isinstance(attack, EvasionAttack)
    x = digits.x_test[:10]
    x_adv = attack.generate(x)
    assert x_adv.shape == x.shape and x_adv.dtype == np.float32 and 0 <= x_adv.min() and x_adv.max() <= 1
    attack.set_params(max_iter=1)
    assert attack.max_iter == 1


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="no GPU")
def test_deepfool_runs_on_the_gpu(model, digits):
    import torch

    from attacks.art_adapter import art_classifier
    from attacks.deepfool import DeepFool

    gpu = torch.device("cuda")
    estimator = art_classifier(model.to(gpu), digits.input_shape, 10, gpu)
    x_adv = DeepFool(estimator, max_iter=50, epsilon=0.02, batch_size=64).generate(digits.x_test[:32])
    model.to(_cpu())
    assert x_adv.shape == digits.x_test[:32].shape


def _cpu():
    import torch

    return torch.device("cpu")
