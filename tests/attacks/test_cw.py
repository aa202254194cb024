"""The suite's batched C&W L2 (attacks/cw.py) is at least as strong as ART's on the same images."""

import pytest

from attacks import get_attack

from ._strength import compare, undefended


@pytest.fixture(scope="module")
def model(digits):
    return undefended(digits)


def test_cw_l2_is_at_least_as_strong_as_arts(model, digits):
    result = compare("cw-l2", model, digits, n=16)
    ours, art = result["cw-l2"], result["cw-l2-art"]
    assert ours["success"] >= art["success"] and ours["success"] > 0.9
    # Minimal attack: mean L2 over the images both fool, not more than 5% above ART's.
    both = ours["fooled"] & art["fooled"]
    assert ours["norms"]["l2"][both].mean() <= 1.05 * art["norms"]["l2"][both].mean()


def test_cw_l2_has_its_own_cache_key():
    assert get_attack("cw-l2").implementation and not get_attack("cw-l2-art").implementation
