"""Per-character voting across the reads of one plate: the text a track's reads agree on.

Each read votes for each of its characters, the vote counting by the log-odds of that
character's confidence scaled by the read's own confidence (see `_evidence`). Reads of
different lengths (a character missed, or a bolt read as an extra `1`) are first aligned to a
reference by edit distance, so that they vote for the positions they really cover rather than
shifting every character after the slip:

1. The reference is the read text closest (evidence-weighted edit distance) to all the others.
2. Every read is aligned to it (Levenshtein, with a backtrace): a matched or substituted
   character votes for that position, a missing one votes "no character here", an extra one
   votes for an insertion after the position.
3. Each position keeps the character with the most evidence; a position is dropped when "no
   character" wins, and an insertion is kept only when it outweighs the reads that had none.

The confidence of a consensus character is its share of the votes out of one vote per read, so
a single read gives back its own confidences, and agreeing confident reads approach 1.
Pure Python, no I/O: the consolidator feeds it readings, the bench feeds it model output.
"""

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Consensus", "Read", "align", "vote"]

_GAP = ""
_EPS = 1e-6
_MAX_CANDIDATES = 5


@dataclass(frozen=True)
class Read:
    """One read of the plate: its text and one confidence per character."""

    text: str
    confidences: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.confidences) != len(self.text):
            raise ValueError(f"{len(self.confidences)} confidences for {len(self.text)} chars")

    @property
    def weight(self) -> float:
        """The read's own confidence: its least certain character (0 for an empty read)."""
        return min(self.confidences, default=0.0)


@dataclass(frozen=True)
class Consensus:
    text: str
    confidences: tuple[float, ...]  # per character of `text`
    candidates: tuple[tuple[str, float, int], ...]  # (text, share of evidence, reads), best first

    @property
    def confidence(self) -> float:
        return min(self.confidences, default=0.0)


def align(reference: str, text: str) -> list[tuple[int, int | None, int | None]]:
    """Levenshtein alignment of `text` to `reference`: (ref position, ref index, text index) per
    step; ref index None is an insertion after `ref position - 1`, text index None a deletion."""
    n, m = len(reference), len(text)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        cost[i][0] = i
    for j in range(m + 1):
        cost[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            substitute = cost[i - 1][j - 1] + (reference[i - 1] != text[j - 1])
            cost[i][j] = min(substitute, cost[i - 1][j] + 1, cost[i][j - 1] + 1)
    steps: list[tuple[int, int | None, int | None]] = []
    i, j = n, m
    while i > 0 or j > 0:
        # Prefer the diagonal on ties: a substitution keeps positions where they are.
        if i > 0 and j > 0 and cost[i][j] == cost[i - 1][j - 1] + (reference[i - 1] != text[j - 1]):
            steps.append((i - 1, i - 1, j - 1))
            i, j = i - 1, j - 1
        elif i > 0 and cost[i][j] == cost[i - 1][j] + 1:
            steps.append((i - 1, i - 1, None))
            i -= 1
        else:
            steps.append((i, None, j - 1))
            j -= 1
    steps.reverse()
    return steps


def _distance(a: str, b: str) -> int:
    return sum(1 for _, ri, ti in align(a, b) if ri is None or ti is None or a[ri] != b[ti])


def _reference(reads: Sequence[Read]) -> str:
    evidence_of: dict[str, float] = defaultdict(float)
    weight_of: dict[str, float] = defaultdict(float)
    for read in reads:
        evidence_of[read.text] += _evidence(read.weight, read.weight)
        weight_of[read.text] += read.weight

    def spread(text: str) -> tuple[float, float, str]:
        # Closest to the others by evidence; among reads too weak to carry any, by confidence.
        far = sum(e * _distance(text, other) for other, e in evidence_of.items())
        far_weight = sum(w * _distance(text, other) for other, w in weight_of.items())
        return far, far_weight, text

    return min(sorted(evidence_of), key=spread)  # sorted: the same reads, the same reference


def vote(reads: Sequence[Read]) -> Consensus:
    """The consensus of `reads` (reads with no characters vote for nothing but still count)."""
    if not reads:
        raise ValueError("no reads to vote on")
    voters = [r for r in reads if r.text]
    if not voters:
        return Consensus("", (), (("", 0.0, len(reads)),))
    reference = _reference(voters)
    at: list[_Votes] = [_Votes() for _ in reference]
    # What each read inserts before reference position p (p = len: after the last), as one
    # string per read, so that "nothing inserted" is a vote like any other.
    inserted: list[_Votes] = [_Votes() for _ in range(len(reference) + 1)]
    for read in voters:
        extra: dict[int, list[int]] = defaultdict(list)
        for position, ri, ti in align(reference, read.text):
            if ri is None:
                assert ti is not None
                extra[position].append(ti)
            elif ti is None:
                at[ri].add(_GAP, read.weight, read.weight)
            else:
                at[ri].add(read.text[ti], read.confidences[ti], read.weight)
        for position in range(len(reference) + 1):
            indices = extra.get(position, [])
            weight = min((read.confidences[i] for i in indices), default=read.weight)
            inserted[position].add("".join(read.text[i] for i in indices), weight, read.weight)
    n = len(voters)
    chars: list[tuple[str, float]] = []
    for position in range(len(reference) + 1):
        extra_text, share = inserted[position].winner()
        chars.extend((c, min(share / n, 1.0)) for c in extra_text)
        if position < len(reference):
            char, share = at[position].winner()
            if char != _GAP:
                chars.append((char, min(share / n, 1.0)))
    text = "".join(c for c, _ in chars)
    return Consensus(text, tuple(w for _, w in chars), _candidates(reads, text))


def _evidence(confidence: float, read_weight: float) -> float:
    """How much a vote counts when choosing a character: the log-odds of its confidence (a 0.95
    character outweighs three 0.6 ones; below 0.5, nothing), scaled by the read's own weight,
    so that a far-away frame that is mostly wrong cannot outvote a clear one with the single
    character it happened to see confidently."""
    c = min(max(confidence, _EPS), 1.0 - _EPS)
    return max(0.0, math.log(c / (1.0 - c))) * read_weight


class _Votes:
    """The votes for one position: their evidence (decides) and confidence (reported)."""

    def __init__(self) -> None:
        self._evidence: dict[str, float] = defaultdict(float)
        self._confidence: dict[str, float] = defaultdict(float)

    def add(self, choice: str, confidence: float, read_weight: float) -> None:
        self._evidence[choice] += _evidence(confidence, read_weight)
        self._confidence[choice] += confidence

    def winner(self) -> tuple[str, float]:
        """The choice with the most evidence (then the most confidence, then alphabetically
        first, so that the result never depends on the order of the reads), and the sum of its
        votes' confidences."""
        choice = min(self._evidence, key=lambda c: (-self._evidence[c], -self._confidence[c], c))
        return choice, self._confidence[choice]


def _candidates(reads: Sequence[Read], consensus: str) -> tuple[tuple[str, float, int], ...]:
    total = sum(r.weight for r in reads) or 1.0
    score: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for read in reads:
        score[read.text] += read.weight
        count[read.text] += 1
    score.setdefault(consensus, 0.0)
    ranked = sorted(score, key=lambda t: (t != consensus, -score[t], t))
    return tuple((t, score[t] / total, count.get(t, 0)) for t in ranked[:_MAX_CANDIDATES])
