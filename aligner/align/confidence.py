"""Confidence in context: a pair's score from its neighbours and its length fit, not only its
own similarity.

The aligner scores each bead alone (``aligner.align.sentence_align.bead_score``), so a short
right pair (``这种做法必须持续下去。`` / ``It must be sustained.``) can score below the
threshold though it sits between sure pairs and its lengths fit. Here each paired bead's
score is refitted from
- its own score (as a logit),
- the mean score of the paired beads just before and after it (sure neighbours vouch for it),
- whether an unpaired sentence lies next to it (where a sentence is missing on one side, the
  pair beside it is often wrong),
- how far its length ratio is from the document's (log).
Neighbours vouch only for a pair with some evidence of its own: their score is weighed by a
logistic gate on the pair's own logit (half at ``GATE_AT``, a score of about 0.05), so a pair
that matches nothing (an unrelated sentence between two sure pairs) stays below the threshold.
The weights are a logistic regression fitted by ``bench/confidence_fit.py`` on the aligner's own
beads of MAC-Dev and unpc-docs (right: equal to a gold bead) and on the beads it picks between
texts that are not translations of each other, each genre and class weighing the same, so that
``DEFAULT_MIN_SCORE`` keeps its meaning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from aligner.models import Bead

# bias, own logit, neighbours' mean score (gated), unpaired neighbour, length misfit
WEIGHTS = (-2.4, 0.41, 4.75, -2.18, -0.51)
GATE_AT = -3.0
GATE_SLOPE = 2.0
CLIP = 8.0


def _logit(score: float) -> float:
    score = min(max(score, 1e-6), 1 - 1e-6)
    return max(-CLIP, min(CLIP, math.log(score / (1 - score))))


def features(beads: Sequence[Bead], zh: Sequence[str], en: Sequence[str]) -> list[list[float]]:
    """One feature row per bead (all zeros for an unpaired bead), beads in document order."""
    paired = [k for k, b in enumerate(beads) if b.zh and b.en]
    zh_len = {k: sum(len(zh[i]) for i in beads[k].zh) for k in paired}
    en_len = {k: sum(len(en[j]) for j in beads[k].en) for k in paired}
    ratio = max(sum(zh_len.values()), 1) / max(sum(en_len.values()), 1)
    rows = [[0.0] * len(WEIGHTS) for _ in beads]
    for n, k in enumerate(paired):
        own = _logit(beads[k].score)
        around = [beads[paired[m]].score for m in (n - 1, n + 1) if 0 <= m < len(paired)]
        lone = any(0 <= m < len(beads) and not (beads[m].zh and beads[m].en) for m in (k - 1,
                                                                                       k + 1))
        misfit = abs(math.log((zh_len[k] + 10) / (ratio * en_len[k] + 10)))
        near = sum(around) / len(around) if around else beads[k].score
        gate = 1.0 / (1.0 + math.exp(-GATE_SLOPE * (own - GATE_AT)))
        rows[k] = [1.0, own, near * gate, float(lone), misfit]
    return rows


def rescore(
    beads: Sequence[Bead], zh: Sequence[str], en: Sequence[str], weights=WEIGHTS
) -> list[Bead]:
    """The beads with each pair's score refitted in context; unpaired beads keep score 0."""
    out = []
    for bead, row in zip(beads, features(beads, zh, en), strict=True):
        if bead.zh and bead.en:
            value = sum(w * x for w, x in zip(weights, row, strict=True))
            bead = Bead(bead.zh, bead.en, 1.0 / (1.0 + math.exp(-value)))
        out.append(bead)
    return out
