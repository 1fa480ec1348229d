"""What a word suggestion's probability means: a calibration fitted on held-out text that turns
the ranking's renormalised product into how often such a suggestion is the next word (so the
``confidence`` threshold means what it says), and one that goes on learning from the writer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ghostwrite.model.words import first_word


@dataclass(frozen=True)
class Calibration:
    """P(the suggestion is the next word) = sigmoid(slope * logit p + intercept): monotone, so it
    keeps the ranking and changes only what a probability (and the threshold) means."""

    slope: float
    intercept: float

    def __call__(self, p: np.ndarray) -> np.ndarray:
        return sigmoid(self.slope * logit(p) + self.intercept)


def logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-9, 1 - 1e-9)
    return np.log(q / (1 - q))


def fit_calibration(
    p: np.ndarray, right: np.ndarray, prior: Calibration | None = None, prior_weight: float = 0.0
) -> Calibration:
    """Logistic regression of ``right`` (0/1) on logit ``p`` (Newton's method). With a ``prior``,
    the most probable calibration under a Gaussian prior centred on it that is worth
    ``prior_weight`` observations like these (its precision is their Fisher information)."""
    x = np.stack([logit(p), np.ones(len(p))], axis=1)
    y = right.astype(np.float64)
    centre = np.zeros(2) if prior is None else np.array([prior.slope, prior.intercept])
    penalty = np.zeros((2, 2))
    if prior is not None and prior_weight > 0 and len(p):
        q = sigmoid(x @ centre)
        penalty = prior_weight / len(p) * (x * (q * (1 - q))[:, None]).T @ x
    w = centre.copy()
    for _ in range(100):
        q = sigmoid(x @ w)
        gradient = x.T @ (q - y) + penalty @ (w - centre)
        hessian = (x * (q * (1 - q))[:, None]).T @ x + penalty + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return Calibration(float(w[0]), float(w[1]))


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


class OnlineCalibration:
    """A calibration that goes on learning from one writer: every word suggestion the server
    would show is, once the writer has typed on, right or wrong, and the calibration is refitted
    on the last ``window`` of those outcomes around the fitted one (``prior``, worth
    ``prior_weight`` of them). A writer whose next words are easier to guess than the fitting
    text's sees more suggestions; a harder one fewer; either way a shown probability stays how
    often such a suggestion is right for them."""

    def __init__(
        self,
        prior: Calibration,
        prior_weight: float = 300.0,
        window: int = 3000,
        refit_every: int = 25,
    ) -> None:
        self.prior = prior
        self.prior_weight = prior_weight
        self.window = window
        self.refit_every = refit_every
        self.current = prior
        self._p: list[float] = []
        self._right: list[bool] = []
        self._since_fit = 0

    def __call__(self, p: np.ndarray) -> np.ndarray:
        return self.current(p)

    def summary(self) -> dict[str, float | int]:
        """What ``ghostwrite.status`` shows: the outcomes learned from and the fit in force."""
        return {
            "outcomes": len(self._p),
            "slope": round(self.current.slope, 4),
            "intercept": round(self.current.intercept, 4),
        }

    def learn(self, p: float, right: bool) -> None:
        """One outcome: a suggestion at renormalised product ``p`` was (not) the next word."""
        self._p.append(p)
        self._right.append(right)
        if len(self._p) > self.window:
            del self._p[0], self._right[0]
        self._since_fit += 1
        if self._since_fit >= self.refit_every:
            self._since_fit = 0
            self.current = fit_calibration(
                np.array(self._p), np.array(self._right), self.prior, self.prior_weight
            )


CHECKED_CHARS = 200


class Outcomes:
    """Word suggestions waiting for the writer to type past them. Each is right when the text
    typed after its cursor begins with its first word (what one keystroke accepts), wrong when
    the text goes another way, and forgotten when the cursor moves elsewhere or text is
    deleted; each judged one teaches ``calibration``."""

    def __init__(self, calibration: OnlineCalibration, most: int = 16) -> None:
        self.calibration = calibration
        self.most = most  # pending ones kept (a long pause between keystrokes adds none)
        self._pending: list[tuple[str, str, float]] = []  # (text before, first word, product)

    def expect(self, before: str, text: str, product: float) -> None:
        """The suggestion ``text`` (renormalised product ``product``) is the best at ``before``."""
        self._pending = [*self._pending, (before, first_word(text), product)][-self.most :]

    def typed(self, before: str) -> None:
        """The text before the cursor is now ``before``: judge what it decides."""
        waiting = []
        for at, word, product in self._pending:
            if before == at:
                waiting.append((at, word, product))
                continue
            # Typed on from there (its last characters stand for the whole: documents are long).
            start = max(0, len(at) - CHECKED_CHARS)
            if len(before) < len(at) or before[start : len(at)] != at[start:]:
                continue
            typed = before[len(at) :]
            if typed.startswith(word):
                self.calibration.learn(product, True)
            elif word.startswith(typed):
                waiting.append((at, word, product))
            else:
                self.calibration.learn(product, False)
        self._pending = waiting
