"""DunDi on real digits: the two-step decision, its logits, backbones, options.

The default model is the one the contract test trains (same session cache key).
"""

import copy

import numpy as np
import pytest
import torch

from bench.cache import Cache, default_cache_dir
from bench.errors import BenchError
from bench.models import accuracy, classify
from bench.runner import trained_model
from defenses import get_defense
from defenses.dundi import agreement, contrastive, embed_all, pairwise_distances, triplet_batch_hard

CPU = torch.device("cpu")


def _trained(digits, overrides=None):
    return trained_model(digits, "dundi", overrides or {}, 0, CPU, Cache(default_cache_dir()), False)


@pytest.fixture(scope="module")
def model(digits):
    return _trained(digits).module


def _brute_force(model, x):
    """Nearest class by mean distance to its m nearest references, over ALL references,
    with explicit differences (no shortlist, no matmul identity)."""
    e = embed_all(model, x, CPU)
    distances = (e[:, None, None, :] - model.references[None]).norm(dim=-1)  # N×C×R
    return distances.sort(dim=-1).values[..., : model.m].mean(-1).argmin(1).numpy()


def test_two_step_equals_brute_force_nearest_references_when_k_is_all_classes(model, digits):
    everything = copy.deepcopy(model)
    everything.k = digits.num_classes
    np.testing.assert_array_equal(classify(everything, digits.x_test, CPU), _brute_force(model, digits.x_test))
    # the shortlist matters for some images at the default k, or the test above proves little
    assert model.k < digits.num_classes


def test_step_two_reads_only_the_shortlisted_classes_references(model, digits):
    e = embed_all(model, digits.x_test, CPU)
    shortlists = pairwise_distances(e, model.centroids).topk(model.k, dim=1, largest=False).indices
    expected = classify(model, digits.x_test, CPU)
    refs, m = model.references.shape[1], model.m
    for c in range(digits.num_classes):
        outside = np.flatnonzero(~(shortlists == c).any(1).numpy())  # images not shortlisting c
        assert len(outside) >= refs // m
        poisoned = copy.deepcopy(model)
        # NaN references of class c would spoil any arithmetic that read them ...
        poisoned.references[c] = float("nan")
        np.testing.assert_array_equal(classify(poisoned, digits.x_test[outside], CPU), expected[outside])
        # ... and the images' own embeddings (m copies each) as class c's references would win
        # any comparison that considered them: the brute force over all classes falls for them.
        chosen = outside[: refs // m]
        copies = e[chosen].repeat_interleave(m, 0)
        poisoned.references[c] = copies[torch.arange(refs) % len(copies)]
        x = digits.x_test[chosen]
        assert (_brute_force(poisoned, x) == c).all()
        np.testing.assert_array_equal(classify(poisoned, x, CPU), expected[chosen])


def test_forward_is_differentiable_and_agrees_with_predict(model, digits):
    x = torch.as_tensor(digits.x_test[:32]).requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(model(x), torch.as_tensor(digits.y_test[:32]))
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert agreement(model, digits.x_test, CPU) >= 0.98
    assert accuracy(model, digits.x_test, digits.y_test, CPU) >= 0.95


@pytest.mark.parametrize("freeze", [True, False])
def test_backbone_from_a_suite_trained_state_dict(digits, tmp_path, freeze):
    undefended = trained_model(digits, "none", {}, 0, CPU, Cache(default_cache_dir()), False).module
    path = tmp_path / "none.pt"
    torch.save(undefended.state_dict(), path)
    dundi = _trained(digits, {"backbone": str(path), "freeze_backbone": str(freeze), "epochs": "3"}).module
    same = [torch.equal(a, b) for a, b in zip(dundi.features.state_dict().values(),
                                               undefended.features.state_dict().values())]
    assert all(same) if freeze else not all(same)
    assert accuracy(dundi, digits.x_test, digits.y_test, CPU) > 0.9


def test_bad_backbones_are_one_line_errors(digits, tmp_path):
    build = get_defense("dundi").build
    options = get_defense("dundi").options(digits)
    text = tmp_path / "notes.txt"
    text.write_text("not weights")
    alien = tmp_path / "alien.pt"
    torch.save({"layer.weight": torch.zeros(3, 3)}, alien)
    cases = {str(tmp_path / "missing.pt"): "is not a file", str(text): "is not a torch state dict",
             str(alien): "is not a zoo classifier", "torchvision:nonet": "unknown torchvision model"}
    for spec, message in cases.items():
        with pytest.raises(BenchError, match=message):
            build(digits, options | {"backbone": spec})


def test_torchvision_backbone_takes_grey_images(digits):
    options = get_defense("dundi").options(digits, {"backbone": "torchvision:resnet18"})
    net = get_defense("dundi").build(digits, options)
    assert net(torch.as_tensor(digits.x_test[:4])).shape == (4, digits.num_classes)


def test_options_are_coerced_and_checked(digits):
    defense = get_defense("dundi")
    options = defense.options(digits, {"k": "2", "loss": "contrastive", "normalize": "false"})
    assert (options["k"], options["loss"], options["normalize"]) == (2, "contrastive", False)
    for bad in ({"k": 11}, {"m": 0}, {"loss": "hinge"}, {"margin": 0.0}):
        with pytest.raises(BenchError, match="dundi"):
            defense.build(digits, defense.options(digits) | bad)


def test_losses_vanish_only_when_classes_are_separated_by_the_margin():
    labels = torch.tensor([0, 0, 1, 1])
    apart = torch.tensor([[0.0, 0.0], [0.0, 0.1], [3.0, 0.0], [3.0, 0.1]])
    mixed = torch.tensor([[0.0, 0.0], [3.0, 0.1], [3.0, 0.0], [0.0, 0.1]])
    assert triplet_batch_hard(apart, labels, 1.0) == 0 and triplet_batch_hard(mixed, labels, 1.0) > 1
    assert contrastive(apart, labels, 1.0) < 0.01 and contrastive(mixed, labels, 1.0) > 1
