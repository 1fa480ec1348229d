"""An adaptive byte model of the text written so far, and a mixer that combines its next-byte
distribution with the GPT's, learning online from every byte typed.

``ByteNgram`` is an interpolated Witten-Bell byte n-gram (orders 0 to ``order``) updated as text
arrives: it knows this writer's names and phrases the moment they are typed, which the GPT's
fixed weights and 128-byte window do not. ``Mixer`` combines the two distributions
geometrically, p(x) proportional to p_gpt(x)^w1 * p_ngram(x)^w2 (logistic mixing, as in PAQ and
cmix, for 256 symbols), with one weight pair per length of the longest context the n-gram has
seen: it learns how far to trust the n-gram when it has seen a long match and when it has not.
Both act on output distributions only, so the GPT's KV cache stays valid.
"""

from __future__ import annotations

import numpy as np

VOCAB = 256
FLOOR = 1e-6  # the mixture's share spread evenly over all bytes
DENSE_ORDERS = 2  # contexts this short keep a dense count vector; longer ones a sparse dict


class ByteNgram:
    """Next-byte counts after every context of up to ``order`` bytes, and their interpolated
    Witten-Bell distribution, which never gives a byte zero probability (a uniform floor)."""

    def __init__(self, order: int = 5) -> None:
        self.order = order
        # tables[k]: context of k bytes -> counts (dense array for short contexts, else dict).
        self.tables: list[dict[bytes, np.ndarray | dict[int, int]]] = [{} for _ in range(order + 1)]
        self.history = b""  # the last ``order`` bytes seen

    def update(self, data: bytes) -> None:
        """Count ``data`` as the continuation of the bytes seen so far."""
        text = self.history + data
        first = len(self.history)
        tables, order = self.tables, self.order
        for i in range(first, len(text)):
            byte = text[i]
            for k in range(min(order, i) + 1):
                context = text[i - k : i]
                table = tables[k]
                counts = table.get(context)
                if k <= DENSE_ORDERS:
                    if counts is None:
                        counts = table[context] = np.zeros(VOCAB)
                    counts[byte] += 1
                else:
                    if counts is None:
                        counts = table[context] = {}
                    counts[byte] = counts.get(byte, 0) + 1
        self.history = text[-order:] if order else b""

    def distribution(self, context: bytes) -> tuple[np.ndarray, int]:
        """P(next byte | the end of ``context``), (256,) summing to 1, and the length of the
        longest context seen before (-1: nothing seen yet)."""
        p = np.full(VOCAB, 1.0 / VOCAB)
        longest = -1
        for k in range(min(self.order, len(context)) + 1):
            counts = self.tables[k].get(context[len(context) - k :] if k else b"")
            if counts is None:
                break  # no longer context was seen either
            if isinstance(counts, dict):
                dense = np.zeros(VOCAB)
                dense[list(counts)] = list(counts.values())
                counts = dense
            total = counts.sum()
            distinct = np.count_nonzero(counts)
            weight = total / (total + distinct)
            p = weight * (counts / total) + (1.0 - weight) * p
            longest = k
        return p, longest


class Mixer:
    """p(x) = softmax(w1 log p_gpt(x) + w2 log p_ngram(x)), weights chosen by the n-gram's
    longest seen context, trained online by gradient descent on each byte's log loss."""

    def __init__(self, order: int, learning_rate: float = 0.02) -> None:
        # One pair per longest seen context: -1 (none) to the n-gram's order.
        self.weights = np.tile([1.0, 0.0], (order + 2, 1))  # start as the GPT alone
        self.learning_rate = learning_rate

    def mix(self, logp_gpt: np.ndarray, logp_ngram: np.ndarray, context: int) -> np.ndarray:
        """Log-probabilities of the mixture (256,), for weight set ``context`` (-1 allowed)."""
        w = self.weights[context + 1]
        z = w[0] * logp_gpt + w[1] * logp_ngram
        p = np.exp(z - z.max())
        # A sliver of uniform: large weights would otherwise underflow a byte to 0.
        return np.log((1.0 - FLOOR) * p / p.sum() + FLOOR / VOCAB)

    def learn(self, logp_gpt: np.ndarray, logp_ngram: np.ndarray, context: int, byte: int) -> float:
        """Update the weights after seeing ``byte``; returns its log-probability before."""
        logp = self.mix(logp_gpt, logp_ngram, context)
        p = np.exp(logp)
        inputs = np.stack([logp_gpt, logp_ngram])  # (2, 256)
        # d(-log p(byte))/dw_i = E_p[log p_i] - log p_i(byte) (ignoring the floor)
        gradient = inputs @ p - inputs[:, byte]
        self.weights[context + 1] -= self.learning_rate * gradient
        return float(logp[byte])
