"""Model zoo and the plain-torch training loop every defense reuses.

Each zoo model is a :class:`Classifier`: ``features`` (input -> flat feature
vector of ``feature_dim``) followed by a linear ``head`` giving logits.  Defenses
that need a different output (DunDi's embedding) replace the head.  Inputs are
float ``N×C×H×W`` in [0, 1]; forward returns logits ``N×num_classes``.

Each family's default architecture and training budget live in ``bench.families``.
"""

from __future__ import annotations

import copy
import random
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from bench.datasets import Dataset
from bench.families import TrainConfig, family


class Classifier(nn.Module):
    """``head(features(x))``: the shape every zoo model has."""

    def __init__(self, features: nn.Module, feature_dim: int, num_classes: int):
        super().__init__()
        self.features = features
        self.feature_dim = feature_dim
        self.head = nn.Linear(feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _cnn8(channels: int) -> tuple[nn.Module, int]:
    """Two 3×3 convolutions and a 128-unit layer: for 8×8 digits."""
    features = nn.Sequential(
        nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 4 * 4, 128), nn.ReLU(),
    )
    return features, 128


def _cnn28(channels: int) -> tuple[nn.Module, int]:
    """The MNIST network of Madry et al. (2018): conv32-conv64 (5×5, max-pool) and 1024 units."""
    features = nn.Sequential(
        nn.Conv2d(channels, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 1024), nn.ReLU(),
    )
    return features, 1024


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def _resnet8(channels: int) -> tuple[nn.Module, int]:
    """A ResNet with three stages of one basic block (16-32-64 channels), for 32×32 colour."""
    features = nn.Sequential(
        nn.Conv2d(channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        _BasicBlock(16, 32, 1), _BasicBlock(32, 64, 2), _BasicBlock(64, 128, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )
    return features, 128


_BUILDERS: dict[str, Callable[[int], tuple[nn.Module, int]]] = {
    "cnn8": _cnn8, "cnn28": _cnn28, "resnet8": _resnet8,
}
#: The zoo's architecture names.
ZOO = tuple(sorted(_BUILDERS))


def build_classifier(data: Dataset, architecture: str | None = None) -> Classifier:
    """The family's default architecture (or ``architecture``), untrained."""
    name = architecture or family(data.family).architecture
    features, dim = _BUILDERS[name](data.input_shape[0])
    return Classifier(features, dim, data.num_classes)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (and make cuDNN deterministic) for reproducible runs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def _batches(n: int, batch_size: int):
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


@torch.no_grad()
def logits_of(model: nn.Module, x: np.ndarray | torch.Tensor, device: torch.device,
              batch_size: int = 512) -> torch.Tensor:
    """Forward ``x`` in batches; returns logits on ``device``."""
    model.eval()
    xs = torch.as_tensor(x, device=device)
    return torch.cat([model(xs[s]) for s in _batches(len(xs), batch_size)])


@torch.no_grad()
def classify(model: nn.Module, x: np.ndarray | torch.Tensor, device: torch.device,
             batch_size: int = 512) -> np.ndarray:
    """Labels as the defense decides them: its own ``predict`` if it has one, else argmax of logits."""
    model.eval()
    xs = torch.as_tensor(x, device=device)
    decide = getattr(model, "predict", None) or (lambda batch: model(batch).argmax(1))
    return torch.cat([decide(xs[s]) for s in _batches(len(xs), batch_size)]).cpu().numpy()


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, device: torch.device) -> float:
    return float((classify(model, x, device) == y).mean())


BatchLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
Score = Callable[[nn.Module], float]


def cross_entropy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(x), y)


def train(model: nn.Module, data: Dataset, config: TrainConfig, *, seed: int, device: torch.device,
          batch_loss: BatchLoss = cross_entropy, score: Score | None = None,
          desc: str = "train", progress: bool = True) -> list[float]:
    """Train ``model`` in place with Adam and a cosine schedule; keep the best epoch.

    ``batch_loss(model, x, y)`` is the objective (plain cross-entropy by
    default; adversarial training and distillation pass their own), and
    ``score(model)`` the validation score that picks the epoch kept (validation
    accuracy by default): the test split is never looked at.  The training set
    stays on ``device`` for the whole run.  Returns the validation score per epoch.
    """
    seed_everything(seed)
    model.to(device)
    x_train = torch.as_tensor(data.x_train, device=device)
    y_train = torch.as_tensor(data.y_train, device=device)
    score = score or (lambda m: accuracy(m, data.x_val, data.y_val, device))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * -(-len(y_train) // config.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(steps, 1))
    generator = torch.Generator().manual_seed(seed)
    best_score, best_state, history = -np.inf, copy.deepcopy(model.state_dict()), []
    epochs = tqdm(range(config.epochs), desc=desc, disable=not progress, leave=False)
    for _ in epochs:
        model.train()
        order = torch.randperm(len(y_train), generator=generator).to(device)
        for s in _batches(len(order), config.batch_size):
            idx = order[s]
            loss = batch_loss(model, x_train[idx], y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        model.eval()
        history.append(score(model))
        epochs.set_postfix(val=f"{history[-1]:.3f}")
        if history[-1] > best_score:
            best_score, best_state = history[-1], copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    model.eval()
    return history
