"""Square Attack (L∞), the paper's loop: one query per still-standing image per iteration.

Paper: Andriushchenko, Croce, Flammarion, Hein 2020, "Square Attack: a
query-efficient black-box adversarial attack via random search"
(https://arxiv.org/abs/1912.00049), Algorithm 1 with the margin loss.
Distance: L∞ (bounded by ``eps``).  Score-based black box: only
``estimator.predict`` is called (no gradients), so it runs on ART's
``BlackBoxClassifierNeuralNetwork`` (the suite's ``blackbox`` threat model)
and on any ART classifier; every image asked about is a counted query.

Same parameters and ``generate`` contract as ART's
``art.attacks.evasion.SquareAttack`` (registered as ``square-art``; the schedule
of the square's size is ART's ``_get_percentage_of_elements``, the paper's).
What changed, and why:

* **one query per iteration** for each image still classified correctly: the
  current margin of each image is kept, so only the candidate is evaluated.
  ART's loop asks about *every* image once per iteration (to find the robust
  ones) and about the robust ones twice (the current and the candidate image):
  three times the model evaluations where images survive, 300 where they don't;
* **a window per image**, at a random place per image and signs per image and
  channel (the paper); ART draws one window place for the whole batch per
  iteration;
* the loss is the paper's margin ``z_y − max_{j≠y} z_j`` (ART takes the second
  largest score, which differs once the image is misclassified).

Other norms (``norm`` 1 or 2) are handed to ART's implementation.

Arguments:
    estimator: an ART classifier (scores per class).  norm: ``np.inf``.
    max_iter (int): iterations (the query budget per image).  eps (float): L∞ budget.
    p_init (float): initial share of pixels in the square.  nb_restarts (int).
    batch_size (int): images per ``predict`` call.  verbose (bool): unused.

Shape:
    x: float32 ``N×C×H×W`` (channels first); y: ``N×classes`` one-hot or ``N``
    indices (true labels; None: the model's predictions).  Returns ``N×C×H×W`` float32.

Example::

    attack = SquareAttack(estimator, norm=np.inf, eps=0.3, max_iter=1000, p_init=0.8)
    x_adv = attack.generate(x, y=np.eye(10)[labels])
"""

from __future__ import annotations

import numpy as np
from art.attacks.evasion import SquareAttack as ArtSquareAttack
from art.utils import check_and_transform_label_format

IMPLEMENTATION = "attacks.square/1"


class SquareAttack(ArtSquareAttack):
    attack_params = ArtSquareAttack.attack_params

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> np.ndarray:
        if self.norm not in (np.inf, "inf") or not self.estimator.channels_first:
            return super().generate(x, y, **kwargs)
        x = np.asarray(x, dtype=np.float32)
        if y is None:
            labels = self.estimator.predict(x, batch_size=self.batch_size).argmax(1)
        else:
            labels = check_and_transform_label_format(y, nb_classes=self.estimator.nb_classes).argmax(1)
        low, high = (0.0, 1.0) if self.estimator.clip_values is None else map(float, self.estimator.clip_values)
        x_adv = x.copy()
        standing = np.ones(len(x), dtype=bool)
        for _ in range(self.nb_restarts):
            rows = np.flatnonzero(standing)
            if not rows.size:
                break
            x_adv[rows], standing[rows] = self._run(x[rows], labels[rows], low, high)
        return x_adv

    def _margin(self, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
        scores = self.estimator.predict(x, batch_size=self.batch_size)
        rows = np.arange(len(x))
        correct = scores[rows, labels]
        scores[rows, labels] = -np.inf
        return correct - scores.max(1)

    def _run(self, x: np.ndarray, labels: np.ndarray, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
        """One restart on ``x``: (adversarial images, which still stand)."""
        n, channels, height, width = x.shape
        eps = self.eps
        # Vertical stripes of ±ε (the paper's initialisation).
        x_best = np.clip(x + eps * np.random.choice([-1, 1], size=(n, channels, 1, width)), low, high)
        x_best = x_best.astype(np.float32)
        margin = self._margin(x_best, labels)
        for i_iter in range(self.max_iter):
            active = np.flatnonzero(margin > 0)
            if not active.size:
                break
            side = int(round(np.sqrt(self._get_percentage_of_elements(i_iter) * height * width)))
            side = min(max(side, 1), height - 1, width - 1)
            top = np.random.randint(0, height - side + 1, size=active.size)
            left = np.random.randint(0, width - side + 1, size=active.size)
            signs = np.random.choice([-eps, eps], size=(active.size, channels, 1, 1)).astype(np.float32)
            # The window of each image set to x ± ε (per channel), clipped to the box.
            window_h = top[:, None] + np.arange(side)[None, :]  # a × side
            window_w = left[:, None] + np.arange(side)[None, :]
            candidate = x_best[active].copy()
            rows = np.arange(active.size)[:, None, None, None]
            chans = np.arange(channels)[None, :, None, None]
            hh = window_h[:, None, :, None]
            ww = window_w[:, None, None, :]
            candidate[rows, chans, hh, ww] = np.clip(x[active][rows, chans, hh, ww] + signs, low, high)
            new_margin = self._margin(candidate, labels[active])
            better = new_margin < margin[active]
            x_best[active[better]] = candidate[better]
            margin[active[better]] = new_margin[better]
        return x_best, margin > 0
