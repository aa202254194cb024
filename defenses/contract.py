"""The defense contract as a check a plugin author can run, like scikit-learn's ``check_estimator``.

:func:`check_defense` fits a defense on a dataset (digits unless told) with its
default options, as the runner would, and checks the rules below, each in a
small function; a broken rule is an ``AssertionError`` that names it.  The
suite runs it on every built-in defense and on the example plugin
(tests/defenses/test_contract.py).  The contract itself is the docstring of
:mod:`defenses`.

``record``       the plugin is a :class:`defenses.Defense` and its default options validate.
``logits``       ``forward`` gives float32 logits ``N×num_classes``.
``gradients``    the input gradient of those logits flows and is not zero (white-box attacks need it).
``labels``       the decisions (``predict`` if the model has one, else argmax of the logits) are
                 one class label per image.
``accuracy``     clean test accuracy above ``min_accuracy`` (0.8: far above chance on digits).
``state-dict``   the ``state_dict``, saved and read back with ``torch.load(weights_only=True)``
                 into a freshly built model, reproduces every decision (it is what the cache keeps).

Example::

    from defenses.contract import check_defense
    from my_plugin.defense import MY_DEFENSE
    check_defense(MY_DEFENSE)   # AssertionError: defense 'mine' breaks the contract rule 'gradients': ...
"""

from __future__ import annotations

import functools
import io
import pickle

import numpy as np
import torch
from torch import nn

from bench.datasets import Dataset, load_dataset
from bench.errors import one_line
from bench.models import accuracy, classify, seed_everything
from defenses import Defense, FitContext, none

CPU = torch.device("cpu")
#: Images of the test split pushed through ``forward`` by the ``logits`` and ``gradients`` rules.
PROBE_IMAGES = 16


def check_defense(defense: Defense, dataset: Dataset | None = None, *, model: nn.Module | None = None,
                  min_accuracy: float = 0.8, seed: int = 0) -> nn.Module:
    """Check every rule of the contract on ``defense``; returns the fitted model.

    Arguments:
        defense: the :class:`defenses.Defense` record (what the plugin's entry point loads to).
        dataset: the data to fit and check on; default: ``bench.load_dataset("digits", seed)``.
        model: the defense's model already fitted on ``dataset`` with its default options (the
            suite's tests pass the one its cache holds); ``None`` fits one here (:func:`fit_defense`).
        min_accuracy: the clean test accuracy the model must beat.
        seed: the seed the model is fitted with.

    Raises:
        AssertionError: naming the first broken rule (see the module docstring).
    """
    data = dataset if dataset is not None else load_dataset("digits", seed)
    options = check_record(defense, data)
    model = (model if model is not None else fit_defense(defense, data, seed)).eval()
    check_logits(defense, model, data)
    check_gradients(defense, model, data)
    check_labels(defense, model, data)
    check_accuracy(defense, model, data, min_accuracy)
    check_state_dict(defense, model, data, options)
    return model


def fit_defense(defense: Defense, data: Dataset, seed: int = 0) -> nn.Module:
    """``defense`` built and fitted on ``data`` with its default options, on the CPU, seeded as the
    runner seeds it; ``ctx.undefended()`` fits the built-in ``none`` the same way (once)."""
    options = defense.options(data)
    seed_everything(seed)
    model = defense.build(data, options)
    undefended = functools.cache(lambda: fit_defense(none.DEFENSE, data, seed))
    defense.fit(model, data, options, FitContext(seed=seed, device=CPU, progress=False, undefended=undefended))
    return model.eval()


def _require(condition: bool, defense: Defense, rule: str, why: str) -> None:
    if not condition:
        raise AssertionError(f"defense {getattr(defense, 'name', defense)!r} breaks the contract rule "
                             f"{rule!r}: {why}")


def check_record(defense: Defense, data: Dataset) -> dict:
    """Rule ``record``: a :class:`Defense` whose defaults for ``data`` validate; returns them."""
    _require(isinstance(defense, Defense), defense, "record", f"expected a defenses.Defense, got a "
             f"{type(defense).__name__}")
    return defense.options(data)


def check_logits(defense: Defense, model: nn.Module, data: Dataset) -> None:
    """Rule ``logits``: ``forward`` of ``N`` images gives a float32 ``N×num_classes`` tensor."""
    logits = model(torch.as_tensor(data.x_test[:PROBE_IMAGES]))
    expected = (min(PROBE_IMAGES, data.n_test), data.num_classes)
    _require(isinstance(logits, torch.Tensor) and tuple(logits.shape) == expected, defense, "logits",
             f"forward gave {_shape(logits)}, expected a tensor of shape {expected}")
    _require(logits.dtype == torch.float32, defense, "logits", f"forward gave {logits.dtype}, expected float32")


def check_gradients(defense: Defense, model: nn.Module, data: Dataset) -> None:
    """Rule ``gradients``: the true-class logits have a non-zero gradient with respect to the input."""
    x = torch.as_tensor(data.x_test[:PROBE_IMAGES]).requires_grad_(True)
    logits = model(x)
    _require(logits.requires_grad, defense, "gradients", "forward's logits are detached from the input")
    logits.gather(1, torch.as_tensor(data.y_test[:PROBE_IMAGES])[:, None]).sum().backward()
    _require(x.grad is not None and bool(x.grad.abs().sum() > 0), defense, "gradients",
             "the input gradient of the logits is zero")


def check_labels(defense: Defense, model: nn.Module, data: Dataset) -> None:
    """Rule ``labels``: one decision per test image, each a class index."""
    labels = classify(model, data.x_test, CPU)
    _require(labels.shape == (data.n_test,), defense, "labels",
             f"{data.n_test} images gave decisions of shape {labels.shape}")
    outside = set(np.unique(labels).tolist()) - set(range(data.num_classes))
    _require(not outside, defense, "labels", f"decisions {sorted(outside)} are not class indices "
             f"0..{data.num_classes - 1}")


def check_accuracy(defense: Defense, model: nn.Module, data: Dataset, min_accuracy: float = 0.8) -> None:
    """Rule ``accuracy``: clean test accuracy above ``min_accuracy``."""
    clean = accuracy(model, data.x_test, data.y_test, CPU)
    _require(clean > min_accuracy, defense, "accuracy",
             f"clean test accuracy {clean:.3f} on {data.name}, expected above {min_accuracy}")


def check_state_dict(defense: Defense, model: nn.Module, data: Dataset, options: dict) -> None:
    """Rule ``state-dict``: the state dict, through ``torch.load(weights_only=True)``, rebuilds a
    model (``build`` with the same options) that decides every test image the same way."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    rebuilt = defense.build(data, options)
    try:
        rebuilt.load_state_dict(torch.load(buffer, weights_only=True))
        problem = ""
    except (RuntimeError, pickle.UnpicklingError) as error:
        problem = one_line(error)
    _require(not problem, defense, "state-dict", f"it does not load into a freshly built model ({problem})")
    same = classify(rebuilt, data.x_test, CPU) == classify(model, data.x_test, CPU)
    _require(bool(same.all()), defense, "state-dict", f"the rebuilt model decides {int((~same).sum())} of "
             f"{data.n_test} test images differently: keep everything the model needs in its state_dict")


def _shape(value: object) -> str:
    return f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else f"a {type(value).__name__}"
