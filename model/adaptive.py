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

    def distributions(self, contexts: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """``distribution`` of many contexts at once: (N, 256) and (N,) longest seen."""
        n, orders = len(contexts), self.order + 1
        counts = np.zeros((orders, n, VOCAB))
        longest = np.full(n, -1)
        for row, context in enumerate(contexts):
            for k in range(min(self.order, len(context)) + 1):
                found = self.tables[k].get(context[len(context) - k :] if k else b"")
                if found is None:
                    break
                if isinstance(found, dict):
                    counts[k, row, list(found)] = list(found.values())
                else:
                    counts[k, row] = found
                longest[row] = k
        p = np.full((n, VOCAB), 1.0 / VOCAB)
        for k in range(orders):
            total = counts[k].sum(axis=1, keepdims=True)
            distinct = np.count_nonzero(counts[k], axis=1)[:, None]
            seen = total > 0  # rows whose context of this length was seen
            weight = np.where(seen, total / np.maximum(total + distinct, 1), 0.0)
            p = weight * (counts[k] / np.maximum(total, 1)) + (1.0 - weight) * p
        return p, longest

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

    def mix_many(
        self, logp_gpt: np.ndarray, logp_ngram: np.ndarray, contexts: np.ndarray
    ) -> np.ndarray:
        """``mix`` of many rows at once: (N, 256) each, weight sets (N,)."""
        w = self.weights[contexts + 1]  # (N, 2)
        z = w[:, :1] * logp_gpt + w[:, 1:] * logp_ngram
        p = np.exp(z - z.max(axis=1, keepdims=True))
        return np.log((1.0 - FLOOR) * p / p.sum(axis=1, keepdims=True) + FLOOR / VOCAB)

    def learn(self, logp_gpt: np.ndarray, logp_ngram: np.ndarray, context: int, byte: int) -> float:
        """Update the weights after seeing ``byte``; returns its log-probability before."""
        logp = self.mix(logp_gpt, logp_ngram, context)
        p = np.exp(logp)
        inputs = np.stack([logp_gpt, logp_ngram])  # (2, 256)
        # d(-log p(byte))/dw_i = E_p[log p_i] - log p_i(byte) (ignoring the floor)
        gradient = inputs @ p - inputs[:, byte]
        self.weights[context + 1] -= self.learning_rate * gradient
        return float(logp[byte])


class AdaptiveModel:
    """The GPT's next-byte distributions mixed with a byte n-gram of one document, both learning
    from each byte typed. ``observe`` follows the document; ``word_probabilities`` scores
    candidate continuations by the mixture."""

    def __init__(self, order: int = 5, read_bytes: int = 20_000) -> None:
        self.order = order
        self.read_bytes = read_bytes  # what a fresh n-gram reads of the text before the cursor
        self.ngram = ByteNgram(order)
        self.mixer = Mixer(order)
        self.seen = b""

    def observe(self, text: bytes, logits_before: np.ndarray | None) -> None:
        """The document now reads ``text`` up to the cursor; ``logits_before`` are the GPT's for
        the byte after the previous ``text``. One byte typed trains the mixer and the n-gram;
        more (a paste: its last ``read_bytes``) are only counted. The first text read counts
        its last ``read_bytes``; anything else (an edit before the end, another place in the
        document) keeps the counts, which still describe the document, and goes on from the new
        cursor: no request pays for reading the document again."""
        seen = self.seen
        if text == seen:
            return
        if text.startswith(seen) and seen:
            new = text[len(seen) :]
            if len(new) == 1 and logits_before is not None:
                p, longest = self.ngram.distribution(seen[-self.order :])
                gpt = logits_before.astype(np.float64)
                gpt = gpt - gpt.max()
                gpt -= np.log(np.exp(gpt).sum())
                self.mixer.learn(gpt, np.log(p), longest, new[0])
            self.ngram.update(new[-self.read_bytes :])
        elif not seen:
            self.ngram.update(text[-self.read_bytes :])
        else:
            self.ngram.history = text[-self.order :] if self.order else b""
        self.seen = text

    def word_probabilities(
        self,
        next_logits: np.ndarray,
        tokens: np.ndarray,
        lengths: np.ndarray,
        logits: np.ndarray,
        ends: np.ndarray,
    ) -> np.ndarray:
        """P(continuation, then a byte in ``ends``) by the mixture, for continuations whose
        tokens (N, L), lengths (N,) and GPT logits after each token (N, L, V) are given (what
        ``Decoder.logits_along`` returns), after the text observed last (whose next-byte
        logits are ``next_logits``)."""
        n = len(tokens)
        history = self.seen[-self.order :]
        # The GPT's distribution before each byte and after the last: (N, L + 1, V).
        gpt = np.concatenate([np.broadcast_to(next_logits, (n, 1, VOCAB)), logits], axis=1)
        gpt = gpt.astype(np.float64)
        gpt -= gpt.max(axis=-1, keepdims=True)
        gpt -= np.log(np.exp(gpt).sum(axis=-1, keepdims=True))
        rows, cols, contexts = [], [], []
        for row in range(n):
            data = tokens[row, : lengths[row]].astype(np.uint8).tobytes()
            for j in range(lengths[row] + 1):
                rows.append(row)
                cols.append(j)
                contexts.append(history + data[:j])
        unique = list(dict.fromkeys(contexts))
        index = {c: i for i, c in enumerate(unique)}
        p, longest = self.ngram.distributions(unique)
        at = np.array([index[c] for c in contexts])
        mixed = self.mixer.mix_many(gpt[rows, cols], np.log(p[at]), longest[at])  # (M, V)
        rows_a, cols_a = np.array(rows), np.array(cols)
        nxt = np.zeros(len(rows_a), dtype=np.int64)
        inside = cols_a < lengths[rows_a]
        nxt[inside] = tokens[rows_a[inside], cols_a[inside]]
        step = np.where(inside, mixed[np.arange(len(rows_a)), nxt], 0.0)
        logp = np.bincount(rows_a, step, n)
        last = ~inside
        end_mass = np.exp(mixed[last])[:, ends].sum(axis=1)
        out = np.zeros(n)
        out[rows_a[last]] = np.exp(logp[rows_a[last]]) * end_mass
        return out
