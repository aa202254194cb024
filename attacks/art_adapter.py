"""Run a registered attack through the adversarial-robustness-toolbox (ART).

Under ``whitebox`` and ``transfer`` the model is wrapped in ART's
``PyTorchClassifier`` over its ``forward`` logits, with ``clip_values=(0, 1)``
and the suite's device, so ART computes gradients on the GPU when there is one.
Under ``blackbox`` it is wrapped in ART's ``BlackBoxClassifierNeuralNetwork``
over a query function (:func:`blackbox_classifier`) that never exposes a
gradient and counts every image it is asked about.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from attacks import AttackSpec
from attacks._torch import frozen

# ART is imported inside the functions that use it: importing it takes seconds,
# and a run served entirely from the cache never builds an estimator.
if TYPE_CHECKING:
    from art.estimators.classification import BlackBoxClassifierNeuralNetwork, PyTorchClassifier

#: The installed ART's version (read without importing ART), part of adversarial-example cache keys.
ART_VERSION = importlib.metadata.version("adversarial-robustness-toolbox")

#: Images per ART batch. ART's DeepFool/JSMA/C&W default to 1, which is ~13× slower.
BATCH_SIZE = {"cpu": 128, "cuda": 1024}

#: What a black-box query returns, by whether the defense has its own ``predict``.
BLACKBOX_OUTPUT = {
    False: "logits",
    True: "one-hot(predict) + softmax(logits)/2",
}


class Float32Input(nn.Module):
    """``model`` on float32 inputs: ART's HopSkipJump computes in float64 and
    ``PyTorchClassifier`` passes its arrays' dtype on to the model unchanged."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.float())


def art_classifier(model: nn.Module, input_shape: tuple[int, ...], num_classes: int,
                   device: torch.device) -> PyTorchClassifier:
    """ART's view of ``model``: logits in, cross-entropy loss, inputs clipped to [0, 1]."""
    from art.estimators.classification import PyTorchClassifier

    model.eval()
    return PyTorchClassifier(
        model=Float32Input(model),
        loss=nn.CrossEntropyLoss(),
        input_shape=tuple(input_shape),
        nb_classes=num_classes,
        clip_values=(0.0, 1.0),
        device_type="gpu" if device.type == "cuda" else "cpu",
    )


class CarliniWagnerMargin(nn.Module):
    """The C&W margin ``max_{j≠y} z_j − z_y`` summed over the batch (``y`` one-hot, as ART passes it).

    Maximising it crosses the nearest decision boundary; unlike cross-entropy it
    does not vanish when the softmax saturates (Carlini & Wagner 2017, §V).
    """

    def forward(self, logits: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        true = onehot.bool()
        other = logits.masked_fill(true, float("-inf")).amax(1)
        return (other - logits[true]).sum()


def margin_classifier(estimator: PyTorchClassifier) -> PyTorchClassifier:
    """The same model, clip values and device as ``estimator``, with the C&W margin as its loss."""
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(
        model=estimator.model,
        loss=CarliniWagnerMargin(),
        input_shape=estimator.input_shape,
        nb_classes=estimator.nb_classes,
        clip_values=estimator.clip_values,
        device_type="cpu" if estimator.device.type == "cpu" else "gpu",
    )


@dataclasses.dataclass
class QueryCount:
    """Images a black-box estimator was asked to classify (mutable: the query function adds to it)."""

    images: int = 0


def blackbox_output(model: nn.Module) -> str:
    """What :func:`blackbox_classifier` returns for ``model`` (recorded in result rows)."""
    return BLACKBOX_OUTPUT[callable(getattr(model, "predict", None))]


def blackbox_classifier(model: nn.Module, input_shape: tuple[int, ...], num_classes: int,
                        device: torch.device) -> tuple[BlackBoxClassifierNeuralNetwork, QueryCount]:
    """ART's query-only view of the defense, and the counter of its queries.

    A query returns one score per class, whose argmax is always the defense's
    decision:

    * a model without ``predict`` decides by argmax of its logits, and a query
      returns those logits (the score-based setting of Square Attack);
    * a model with ``predict`` (DunDi's two-step classifier) decides by it, and
      a query returns ``one-hot(predict) + softmax(logits)/2``: the argmax is
      ``predict``'s label, and the bounded softmax term grades images with the
      same label, so score-based attacks have a signal but succeed only when
      ``predict`` changes.  Decision-based attacks (HopSkipJump) use the argmax only.
    """
    from art.estimators.classification import BlackBoxClassifierNeuralNetwork

    model.eval()
    counter = QueryCount()
    has_predict = callable(getattr(model, "predict", None))

    @torch.no_grad()
    def query(x: np.ndarray) -> np.ndarray:
        counter.images += len(x)
        batch = torch.as_tensor(x, dtype=torch.float32, device=device)
        logits = model(batch)
        if has_predict:
            logits = F.one_hot(model.predict(batch), num_classes).float() + F.softmax(logits, 1) / 2
        return logits.cpu().numpy()

    estimator = BlackBoxClassifierNeuralNetwork(query, tuple(input_shape), num_classes, channels_first=True,
                                                clip_values=(0.0, 1.0))
    return estimator, counter


def _seeded_starts(estimator, x: np.ndarray, trials: int, seed: int,
                   batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """HopSkipJump's starting points drawn from ``seed``, and which images have one.

    For each image, the first of ``trials`` uniform-noise images that the model
    labels differently from the clean image.  ART draws these from an unseeded
    ``RandomState``, so without this its results would not repeat.
    """
    rng = np.random.default_rng(seed)
    clean = estimator.predict(x, batch_size=batch_size).argmax(1)
    starts, pending = x.copy(), np.ones(len(x), dtype=bool)
    for _ in range(trials):
        if not pending.any():
            break
        noise = rng.uniform(0.0, 1.0, size=(int(pending.sum()), *x.shape[1:])).astype(np.float32)
        found = estimator.predict(noise, batch_size=batch_size).argmax(1) != clean[pending]
        rows = np.flatnonzero(pending)[found]
        starts[rows] = noise[found]
        pending[rows] = False
    return starts, ~pending


def run_attack(spec: AttackSpec, params: dict, estimator, x: np.ndarray, y: np.ndarray,
               *, seed: int, device: torch.device, progress: bool = False) -> np.ndarray:
    """Adversarial versions of ``x`` (float32 ``N×C×H×W``) with true labels ``y``.

    ``params`` are the ART constructor parameters (see ``attacks/catalog.py``);
    batch size and progress display are set here, on ensemble members too
    (AutoAttack). NumPy and torch are seeded so random starts, random targets
    (JSMA) and random searches (Square, HopSkipJump) repeat under the same seed.
    """
    from art.attacks.evasion import HopSkipJump

    attack = spec.make(estimator, dict(params))
    extra = {"batch_size": BATCH_SIZE[device.type], "verbose": progress}
    for part in (attack, *getattr(attack, "attacks", ())):
        settable = set(type(part).attack_params)
        part.set_params(**{key: value for key, value in extra.items() if key in settable})
    np.random.seed(seed)
    torch.manual_seed(seed)
    x = x.astype(np.float32)
    labels = None
    if spec.uses_labels:
        labels = np.eye(estimator.nb_classes, dtype=np.float32)[y]
    if isinstance(attack, HopSkipJump):
        # Only images with a seeded start are attacked; the others stay clean (as in ART,
        # where a failed start search leaves the image unchanged).
        starts, started = _seeded_starts(estimator, x, attack.init_size, seed, attack.batch_size)
        x_adv = x.copy()
        if started.any():
            x_adv[started] = attack.generate(x=x[started], y=None if labels is None else labels[started],
                                             x_adv_init=starts[started])
    else:
        # Gradients with respect to the input only: ART's estimators call loss.backward(), which
        # with trainable weights also computes every weight gradient, each step (docs/attacks.md).
        model = getattr(estimator, "model", None)
        with frozen(model) if isinstance(model, nn.Module) else contextlib.nullcontext():
            x_adv = attack.generate(x=x, y=labels)
    return np.clip(x_adv, 0.0, 1.0).astype(np.float32)
