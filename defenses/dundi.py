"""``dundi``: distance metric learning with two-step distance classification.

Paper: Mao, Liu, Liu, Yin, "DunDi: Improving Robustness of Neural Networks
Using Distance Metric Learning", ICCS 2019.  A metric-learning embedding pulls
samples of one label together and pushes different labels apart (contrastive
loss, Hadsell, Chopra, LeCun 2006; triplet loss with batch-hard mining,
Hermans, Beyer, Leibe 2017), and a sample is classified by comparing
distances to class references in two steps.

Distance measure: Euclidean (L2) distance between embeddings.

Model: ``embedding(features(x))`` where ``features`` is the dataset family's
zoo architecture (``bench.models``) or a pre-trained backbone (option
``backbone``), its classification head dropped, and ``embedding`` a linear
layer to ``embedding_dim`` (L2-normalised when ``normalize``).  Two buffers
keep the trained defense inside the ``state_dict``: ``centroids`` (C×D, the
mean training embedding of each class) and ``references`` (C×R×D, R training
embeddings per class drawn by the seed).

Classification (``predict``), the paper's two steps:
    1. shortlist the ``k`` classes whose centroids are nearest to the embedding;
    2. compare the embedding with the references of those ``k`` classes only:
       a class's distance is the mean of its ``m`` nearest references; return
       the nearest class.
``forward`` (what attacks differentiate) gives logits ``-d_c`` where ``d_c``
is the same step-2 distance computed for *every* class.  So ``predict(x) ==
forward(x).argmax(1)`` exactly when the class with the nearest references is
among the ``k`` nearest centroids: always when ``k == C``; otherwise they
disagree only where centroids and references rank classes differently
(:func:`agreement` measures how often; on clean digits and MNIST validation
images it is above 99%).  Under ``whitebox`` an attack on ``forward`` is
therefore an attack on DunDi itself, and the runner's ``defense_rate`` there
is the share of attacks that fool the logits but not the two-step decision.

Options (``--defense-option dundi:KEY=VALUE``; defaults chosen on the
validation split, see docs/dundi.md):
    loss (str): ``triplet`` (batch-hard) or ``contrastive`` (all pairs of a batch). Default: ``triplet``.
    margin (float): loss margin in embedding distance. Default: 0.5.
    embedding_dim (int): D. Default: 64.
    normalize (bool): L2-normalise embeddings (FaceNet). Default: True.
    k (int): classes shortlisted in step 1. Default: 3.
    m (int): nearest references averaged per class in step 2. Default: 5.
    refs_per_class (int): R, capped by the smallest class's training count. Default: 100.
    backbone (str): ``''`` the family's zoo architecture trained from scratch;
        ``undefended`` the suite's trained ``none`` model of the same dataset and seed;
        ``PATH`` a state dict of a zoo classifier (e.g. a cached ``none`` model),
        loaded with ``torch.load(weights_only=True)``; ``torchvision:NAME`` a
        torchvision architecture (e.g. ``resnet18``), randomly initialised, since
        weights are never downloaded. The classification head is dropped.
    freeze_backbone (bool): keep the backbone's weights (and BatchNorm statistics) fixed. Default: False.
    noise (float): std of Gaussian noise added to training images (clipped to [0, 1]);
        NOT part of the paper (Gaussian data augmentation, Zantedeschi et al. 2017),
        0 turns it off. Default: 0.0.
    epochs, batch_size, lr, weight_decay: optimiser (``bench.families.TrainConfig``);
        the epoch kept is the one with the best two-step validation accuracy.

Shapes: input ``N×C×H×W`` in [0, 1] -> logits ``N×num_classes`` (``forward``),
labels ``N`` (``predict``), embeddings ``N×embedding_dim`` (``embed``).

Example::

    bench run --dataset digits --defense none,dundi --attack deepfool
    bench run --defense dundi --defense-option dundi:loss=contrastive --defense-option dundi:k=2
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.datasets import Dataset
from bench.errors import BenchError
from bench.families import TrainConfig, family
from bench.models import ZOO, build_classifier, classify, logits_of, seed_everything, train
from defenses import Defense, FitContext

LOSSES = ("triplet", "contrastive")
#: Attribute names under which torchvision models keep their classification head.
TORCHVISION_HEADS = ("fc", "classifier", "head", "heads")


def pairwise_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distances ``(..., N, M)`` between rows of ``a (..., N, D)`` and ``b (..., M, D)``.

    Clamped away from 0 before the square root so its gradient stays finite
    (``torch.cdist`` gives NaN gradients for coinciding points in matmul mode).
    """
    squared = (a * a).sum(-1)[..., :, None] + (b * b).sum(-1)[..., None, :] - 2 * a @ b.transpose(-1, -2)
    return squared.clamp_min(1e-12).sqrt()


def class_distances(embeddings: torch.Tensor, references: torch.Tensor, m: int) -> torch.Tensor:
    """Step-2 distance of each embedding (N×D) to each class of ``references`` (N×K×R×D or K×R×D):
    the mean of its ``m`` nearest references of that class. Returns N×K."""
    if references.dim() == 3:  # the same K classes for every embedding
        k, r, _ = references.shape
        distances = pairwise_distances(embeddings, references.reshape(k * r, -1)).view(-1, k, r)
    else:  # per-embedding classes: N×K×R×D
        n, k, r, d = references.shape
        distances = pairwise_distances(embeddings[:, None, :], references.reshape(n, k * r, d)).view(n, k, r)
    return distances.topk(m, dim=-1, largest=False).values.mean(-1)


def two_step(embeddings: torch.Tensor, centroids: torch.Tensor, references: torch.Tensor,
             k: int, m: int) -> torch.Tensor:
    """The two-step decision for embeddings N×D: labels N.

    Step 1 ranks the C centroids (N×C distances) and keeps the ``k`` nearest;
    step 2 gathers only those classes' references (N×k×R×D) and returns the
    class whose ``m`` nearest references are nearest on average.
    """
    shortlist = pairwise_distances(embeddings, centroids).topk(k, dim=1, largest=False).indices
    nearest = class_distances(embeddings, references[shortlist], m).argmin(1, keepdim=True)
    return shortlist.gather(1, nearest).squeeze(1)


class _RepeatChannels(nn.Module):
    """Grey images to the three channels torchvision architectures expect."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.expand(-1, 3, -1, -1)


class DunDi(nn.Module):
    """Embedding network plus class references; see the module docstring."""

    def __init__(self, features: nn.Module, feature_dim: int, num_classes: int, refs_per_class: int,
                 options: dict):
        super().__init__()
        self.features = features
        self.embedding = nn.Linear(feature_dim, options["embedding_dim"])
        self.normalize, self.k, self.m = options["normalize"], options["k"], options["m"]
        self.freeze_backbone = options["freeze_backbone"]
        if self.freeze_backbone:
            self.features.requires_grad_(False)
        dim = options["embedding_dim"]
        self.register_buffer("centroids", torch.zeros(num_classes, dim))
        self.register_buffer("references", torch.zeros(num_classes, refs_per_class, dim))

    def train(self, mode: bool = True) -> "DunDi":
        super().train(mode)
        if self.freeze_backbone:  # frozen means BatchNorm statistics too
            self.features.eval()
        return self

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        z = self.embedding(self.features(x))
        return F.normalize(z, dim=1) if self.normalize else z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -class_distances(self.embed(x), self.references, self.m)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return two_step(self.embed(x), self.centroids, self.references, self.k, self.m)


# -- losses -------------------------------------------------------------------------------------

def triplet_batch_hard(embeddings: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Hermans et al. (2017): per anchor, the farthest positive and the nearest negative of the batch."""
    distances = pairwise_distances(embeddings, embeddings)
    same = labels[:, None] == labels[None, :]
    positive = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    hardest_positive = distances.masked_fill(~positive, 0.0).amax(1)
    hardest_negative = distances.masked_fill(same, float("inf")).amin(1)
    valid = positive.any(1) & ~same.all(1)  # anchors with at least one positive and one negative
    return F.relu(hardest_positive - hardest_negative + margin)[valid].mean()


def contrastive(embeddings: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Hadsell, Chopra, LeCun (2006) over all pairs of the batch: positives pulled to 0,
    negatives pushed beyond ``margin``; positive and negative pairs weigh equally."""
    distances = pairwise_distances(embeddings, embeddings)
    same = labels[:, None] == labels[None, :]
    positive = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pull = distances[positive].pow(2)
    push = F.relu(margin - distances[~same]).pow(2)
    return 0.5 * (pull.mean() + push.mean())


LOSS = {"triplet": triplet_batch_hard, "contrastive": contrastive}


# -- plugin functions ---------------------------------------------------------------------------

def _defaults(data: Dataset) -> dict:
    return {
        "loss": "triplet", "margin": 0.5, "embedding_dim": 64, "normalize": True,
        "k": 3, "m": 5, "refs_per_class": 100,
        "backbone": "", "freeze_backbone": False, "noise": 0.0,
        **dataclasses.asdict(family(data.family).training),
    }


def _check(data: Dataset, options: dict) -> int:
    """Validate the options against ``data``; returns R, the references kept per class."""
    classes = data.num_classes
    smallest = int(np.bincount(data.y_train, minlength=classes).min())
    refs = min(options["refs_per_class"], smallest)
    checks = [
        (options["loss"] in LOSSES, f"loss must be one of: {', '.join(LOSSES)}"),
        (options["margin"] > 0, "margin must be > 0"),
        (options["noise"] >= 0, "noise must be >= 0"),
        (options["embedding_dim"] >= 1, "embedding_dim must be >= 1"),
        (1 <= options["k"] <= classes, f"k must be in 1..{classes} (the number of classes)"),
        (options["refs_per_class"] >= 1, "refs_per_class must be >= 1"),
        (1 <= options["m"] <= refs, f"m must be in 1..{refs} (references per class)"),
        (options["epochs"] >= 1, "epochs must be >= 1"),
    ]
    for ok, message in checks:
        if not ok:
            raise BenchError(f"dundi: {message}; got {options}")
    return refs


def _zoo_from_state(data: Dataset, path: str) -> tuple[nn.Module, int]:
    """The features of the zoo classifier saved at ``path`` (its head dropped)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise BenchError(f"dundi: backbone {path!r} is not a file; give '', 'undefended', "
                         f"a state dict PATH of a zoo classifier, or 'torchvision:NAME'")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and weights_only errors all mean "not a state dict"
        raise BenchError(f"dundi: backbone {path!r} is not a torch state dict ({error})") from None
    if not isinstance(state, dict):
        raise BenchError(f"dundi: backbone {path!r} holds a {type(state).__name__}, not a state dict")
    for name in ZOO:
        classifier = build_classifier(data, name)
        if classifier.state_dict().keys() == state.keys() and all(
                value.shape == state[key].shape for key, value in classifier.state_dict().items()):
            classifier.load_state_dict(state)
            return classifier.features, classifier.feature_dim
    raise BenchError(f"dundi: backbone {path!r} is not a zoo classifier for {data.input_shape} inputs "
                     f"with {data.num_classes} classes (zoo: {', '.join(ZOO)})")


def _torchvision_features(data: Dataset, name: str) -> tuple[nn.Module, int]:
    """A torchvision architecture, randomly initialised, its classification head replaced by Identity."""
    import torchvision

    if name not in torchvision.models.list_models():
        raise BenchError(f"dundi: unknown torchvision model {name!r}; see torchvision.models.list_models(), "
                         f"e.g. resnet18, mobilenet_v3_small")
    network = torchvision.models.get_model(name, weights=None)
    head = next((attr for attr in TORCHVISION_HEADS if hasattr(network, attr)), None)
    if head is None:
        raise BenchError(f"dundi: torchvision model {name!r} has none of the heads {TORCHVISION_HEADS}")
    setattr(network, head, nn.Identity())
    channels = data.input_shape[0]
    if channels not in (1, 3):
        raise BenchError(f"dundi: torchvision backbones take 1 or 3 channels, the data has {channels}")
    features = nn.Sequential(*([_RepeatChannels()] if channels == 1 else []), network, nn.Flatten())
    try:
        with torch.no_grad():
            dim = features.eval()(torch.zeros(2, *data.input_shape)).shape[1]
    except RuntimeError as error:
        raise BenchError(f"dundi: torchvision model {name!r} cannot take {data.input_shape} inputs "
                         f"({str(error).splitlines()[0]})") from None
    return features, dim


def _backbone(data: Dataset, spec: str) -> tuple[nn.Module, int]:
    if spec in ("", "undefended"):  # 'undefended' weights arrive in fit, from the suite's none model
        classifier = build_classifier(data)
        return classifier.features, classifier.feature_dim
    if spec.startswith("torchvision:"):
        return _torchvision_features(data, spec.partition(":")[2])
    return _zoo_from_state(data, spec)


def _build(data: Dataset, options: dict) -> nn.Module:
    refs = _check(data, options)
    features, dim = _backbone(data, options["backbone"])
    return DunDi(features, dim, data.num_classes, refs, options)


@torch.no_grad()
def embed_all(model: DunDi, x: np.ndarray | torch.Tensor, device: torch.device,
              batch_size: int = 512) -> torch.Tensor:
    """Embeddings (N×D, on ``device``) of ``x`` in eval mode."""
    model.eval()
    xs = torch.as_tensor(x, device=device)
    return torch.cat([model.embed(xs[start:start + batch_size]) for start in range(0, len(xs), batch_size)])


@torch.no_grad()
def set_references(model: DunDi, x_train: torch.Tensor, y_train: torch.Tensor, seed: int) -> None:
    """Fill ``centroids`` (class means of all training embeddings) and ``references``
    (R training embeddings per class, drawn by ``seed``)."""
    embeddings = embed_all(model, x_train, x_train.device)
    generator = torch.Generator().manual_seed(seed)
    refs = model.references.shape[1]
    for c in range(model.centroids.shape[0]):  # one step per class, not per sample
        members = embeddings[y_train == c]
        model.centroids[c] = members.mean(0)
        model.references[c] = members[torch.randperm(len(members), generator=generator)[:refs].to(members.device)]


def agreement(model: DunDi, x: np.ndarray, device: torch.device) -> float:
    """Fraction of ``x`` on which the two-step ``predict`` equals ``forward(x).argmax(1)``."""
    two_step_labels = classify(model, x, device)
    return float((two_step_labels == logits_of(model, x, device).argmax(1).cpu().numpy()).mean())


def _initialise(model: DunDi, options: dict, ctx: FitContext) -> None:
    """Seeded initialisation of what is not pre-trained (build runs before any seeding)."""
    seed_everything(ctx.seed)
    fresh = [model.embedding] + ([model.features] if options["backbone"] == "" else [])
    for part in fresh:
        for module in part.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    if options["backbone"] == "undefended":
        model.features.load_state_dict(ctx.undefended().features.state_dict())


def _fit(model: DunDi, data: Dataset, options: dict, ctx: FitContext) -> None:
    _initialise(model, options, ctx)
    model.to(ctx.device)
    x_train = torch.as_tensor(data.x_train, device=ctx.device)
    y_train = torch.as_tensor(data.y_train, device=ctx.device)
    loss, margin, noise = LOSS[options["loss"]], options["margin"], options["noise"]

    def batch_loss(net: DunDi, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if noise:  # seeded by train() through torch's global generator
            x = (x + noise * torch.randn_like(x)).clamp(0.0, 1.0)
        return loss(net.embed(x), y, margin)

    def two_step_validation_accuracy(net: DunDi) -> float:
        # References of this epoch go into the state dict that train() keeps for the best epoch.
        set_references(net, x_train, y_train, ctx.seed)
        return float((classify(net, data.x_val, ctx.device) == data.y_val).mean())

    train(model, data, TrainConfig.from_options(options), seed=ctx.seed, device=ctx.device, batch_loss=batch_loss,
          score=two_step_validation_accuracy, desc="train dundi", progress=ctx.progress)


DEFENSE = Defense(
    name="dundi",
    summary="DunDi: metric-learning embedding (triplet/contrastive), two-step distance classification",
    reference="Mao et al. 2019, 'DunDi: Improving Robustness of Neural Networks Using Distance Metric Learning' (ICCS)",
    build=_build,
    fit=_fit,
    defaults=_defaults,
)
