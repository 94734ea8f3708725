"""Matching a reading against watch-list plates the way the reader errs.

A reading is not one string: it carries up to five candidates with their probabilities, and the
top one's characters with their own confidences. Each candidate is compared with a listed plate
by a weighted edit distance whose costs follow the reader's measured confusions
(reader/models/MODEL_CARD.md: 0/D/Q/O, 1/I/T, 2/Z, 5/S, 8/B, M/H, 7/1 cost `CONFUSION_COST`; a
character dropped at either end of the plate, or one added before it, the commonest
fused-reader errors on taxi serials and edge clutter, `END_INDEL_COST`), and a substitution or
an added character is cheaper where the reader itself was unsure of the character it read. The
plate's score is the probability-weighted closeness of all candidates:
`sum(p_c * exp(-d_c / TOLERANCE))` over candidates `c`. A plate alerts when its score reaches
the threshold.

Pure functions of strings and numbers: no Redis, no model.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from schemas import PlateEvent, PlateReading

__all__ = [
    "CONFUSIONS",
    "CONFUSION_COST",
    "DEFAULT_THRESHOLD",
    "END_INDEL_COST",
    "Candidate",
    "Match",
    "best_alignment",
    "event_candidates",
    "least_read_cost",
    "max_distance",
    "normalise_plate",
    "reading_candidates",
    "score_plate",
]

# Groups of characters the reader mistakes for one another; any two of a group substitute at
# CONFUSION_COST. The list (0/D/Q/O, 1/I/T, 2/Z, 5/S, 8/B, M/H), then the pairs that
# the fused reader confused at least twice on the fit half of real_us_dev (bench/watch.py's
# split; top reading against label): V/Y 3, M/N 2, T/7 2, C/0 2 (T/1 10, 2/Z 3, Q/0 2 and 1/I 2
# were already in).
CONFUSIONS: tuple[str, ...] = ("0DQO", "1IT", "2Z", "5S", "8B", "MH", "VY", "MN", "T7", "C0")
# Characters the reader drops or adds inside a plate as it does at its ends (W, wide enough to
# be split or lost: 3 dropped and 3 added on the fit half); they cost END_INDEL_COST anywhere.
LOOSE_CHARS = frozenset("W")
CONFUSION_COST = 0.3
# A listed character missing at either end of the read, or an extra one read before the plate
# (an emblem or a prefix glyph read as a letter: on the fit half 11 of the 14 readings with
# extra characters at an end had them in front). An extra character read after the plate costs
# as one inside it: on the report half, the only false alerts at the default threshold were
# Maryland and Virginia SAMPLE plates, read right, alerting on Michigan's listed SAMPL.
END_INDEL_COST = 0.5
INDEL_COST = 1.0
SUB_COST = 1.0
# A substitution, or an extra character read anywhere but in front, costs in proportion to the
# read character's own confidence q (the reader said how likely it was wrong): base *
# max(q, SUB_CONFIDENCE_FLOOR).
SUB_CONFIDENCE_FLOOR = 0.25
# Distance that divides the score by e: one plain slip on a sure character scores exp(-1/0.6)
# = 0.19, under DEFAULT_THRESHOLD; a confusion, an end character or an unsure one stays above.
TOLERANCE = 0.6
# Chosen on the first half of real_us_dev's plates by bench/watch.py (--fit), reported on the
# other half; see the README's "Watch lists and alerts".
DEFAULT_THRESHOLD = 0.2

_PAIR_COST: dict[tuple[str, str], float] = {
    (a, b): CONFUSION_COST for group in CONFUSIONS for a in group for b in group if a != b
}


def normalise_plate(text: str) -> str:
    """Uppercase 0-9A-Z only (spaces, dashes and dots dropped), the letter O folded to the digit
    0 as `plate-ocr eval` does: US plates draw them alike and most states issue only one."""
    return "".join(c for c in text.upper() if c.isascii() and c.isalnum()).replace("O", "0")


@dataclass(frozen=True, slots=True)
class Candidate:
    """One plate string the reader considered: its probability and, where known, each
    character's confidence (None: unknown, treated as certain)."""

    text: str
    probability: float
    confidences: tuple[float, ...] | None = None


@dataclass(frozen=True, slots=True)
class Match:
    """How a listed plate matched: its score, the candidate closest to it, and the edits."""

    plate: str
    score: float
    candidate: str
    candidate_rank: int  # 0: the reading's own text
    candidate_probability: float
    distance: float
    edits: tuple[str, ...]  # e.g. ("8>B", "+T", "-1"): read>listed, listed char missing, extra

    @property
    def kind(self) -> str:
        """exact (the reading's text is the plate), candidate (another candidate is), or fuzzy."""
        if self.distance == 0:
            return "exact" if self.candidate_rank == 0 else "candidate"
        return "fuzzy"


def _sub_cost(read: str, listed: str, confidence: float) -> float:
    if read == listed:
        return 0.0
    base = _PAIR_COST.get((read, listed), SUB_COST)
    return base * max(confidence, SUB_CONFIDENCE_FLOOR)


def _gap_cost(char: str, *, at_end: bool) -> float:
    return END_INDEL_COST if at_end or char in LOOSE_CHARS else INDEL_COST


def _extra_cost(char: str, confidence: float, *, leading: bool) -> float:
    # A character read that the listed plate lacks.
    if leading:
        return END_INDEL_COST
    return _gap_cost(char, at_end=False) * max(confidence, SUB_CONFIDENCE_FLOOR)


def least_read_cost(char: str, confidence: float) -> float:
    """The least any edit involving one read character costs (PlateIndex's bound): substituting
    it, dropping it as an extra one, or dropping it in front of the plate."""
    return min(
        _sub_cost(char, "", confidence),
        _extra_cost(char, confidence, leading=False),
        END_INDEL_COST,
    )


def _distance_table(
    read: str, listed: str, confidences: Sequence[float] | None
) -> list[list[float]]:
    n, m = len(read), len(listed)
    qs = confidences if confidences is not None else (1.0,) * n
    table = [[0.0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):  # leading extra read characters
        table[i][0] = table[i - 1][0] + END_INDEL_COST
    for j in range(1, m + 1):  # leading listed characters not read
        table[0][j] = table[0][j - 1] + END_INDEL_COST
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            table[i][j] = min(
                table[i - 1][j - 1] + _sub_cost(read[i - 1], listed[j - 1], qs[i - 1]),
                # an extra read character (j >= 1: not in front of the plate)
                table[i - 1][j] + _extra_cost(read[i - 1], qs[i - 1], leading=False),
                # a listed character not read: at an end of the listed plate, cheap
                table[i][j - 1] + _gap_cost(listed[j - 1], at_end=i in (0, n)),
            )
    return table


def best_alignment(
    read: str, listed: str, confidences: Sequence[float] | None = None
) -> tuple[float, tuple[str, ...]]:
    """The weighted edit distance from `read` to `listed`, and its edits (read>listed for a
    substitution, +X for a listed character that was not read, -X for an extra one read)."""
    table = _distance_table(read, listed, confidences)
    n, m = len(read), len(listed)
    qs = confidences if confidences is not None else (1.0,) * n
    edits: list[str] = []
    i, j = n, m
    while i > 0 or j > 0:
        here = table[i][j]
        if i > 0 and j > 0:
            sub = _sub_cost(read[i - 1], listed[j - 1], qs[i - 1])
            if math.isclose(here, table[i - 1][j - 1] + sub):
                if read[i - 1] != listed[j - 1]:
                    edits.append(f"{read[i - 1]}>{listed[j - 1]}")
                i, j = i - 1, j - 1
                continue
        if i > 0 and math.isclose(
            here, table[i - 1][j] + _extra_cost(read[i - 1], qs[i - 1], leading=j == 0)
        ):
            edits.append(f"-{read[i - 1]}")
            i -= 1
        else:
            edits.append(f"+{listed[j - 1]}")
            j -= 1
    return table[n][m], tuple(reversed(edits))


@lru_cache(maxsize=65536)
def _plain_distance(read: str, listed: str) -> float:
    return _distance_table(read, listed, None)[len(read)][len(listed)]


def _distance(read: str, listed: str, confidences: tuple[float, ...] | None) -> float:
    if confidences is None:
        return _plain_distance(read, listed)
    return _distance_table(read, listed, confidences)[len(read)][len(listed)]


def _confidences_of(c: Candidate) -> tuple[float, ...] | None:
    return c.confidences if c.confidences and len(c.confidences) == len(c.text) else None


def max_distance(plate: str, threshold: float) -> float:
    """No candidate farther than this from `plate` can bring its score to `threshold` (the
    score is at most the best candidate's closeness)."""
    return -TOLERANCE * math.log(threshold)


def score_plate(candidates: Sequence[Candidate], plate: str) -> Match:
    """How well a reading's candidates match one listed plate (normalised, see normalise_plate).

    The score is `sum(p * exp(-d / tolerance))` over the candidates, their probabilities
    renormalised to sum to 1: 1.0 when every candidate is the plate, towards 0 when none is near.
    """
    tolerance = TOLERANCE
    total = sum(c.probability for c in candidates if c.text)
    score = 0.0
    best: tuple[float, float, int] | None = None
    for rank, c in enumerate(candidates):
        if not c.text:
            continue
        d = _distance(c.text, plate, _confidences_of(c))
        p = c.probability / total if total > 0 else 1.0 / len(candidates)
        score += p * math.exp(-d / tolerance)
        if best is None or (d, -p) < (best[0], -best[1]):
            best = (d, p, rank)
    if best is None:
        return Match(plate, 0.0, "", 0, 0.0, math.inf, ())
    d, p, rank = best
    chosen = candidates[rank]
    _, edits = best_alignment(chosen.text, plate, _confidences_of(chosen))
    return Match(plate, min(score, 1.0), chosen.text, rank, p, d, edits)


def _merged(items: Sequence[tuple[str, float, tuple[float, ...] | None]]) -> tuple[Candidate, ...]:
    # Candidates that normalise alike (O and 0) are one candidate: their probabilities add up.
    merged: dict[str, Candidate] = {}
    for text, p, confidences in items:
        key = normalise_plate(text)
        if not key:
            continue
        if key in merged:
            old = merged[key]
            merged[key] = Candidate(key, old.probability + p, old.confidences)
        else:
            merged[key] = Candidate(key, p, confidences)
    return tuple(merged.values())


def reading_candidates(reading: PlateReading) -> tuple[Candidate, ...]:
    """A reading's candidates, best first, each with per-character confidences: the reading's
    own characters' for its text; for another candidate of the same length, the same where it
    agrees with the text and what the text's character left (1 - q) where it differs. A reading
    without candidates is its text."""
    chars = reading.characters
    char_text = "".join(c.char for c in chars)
    char_conf = tuple(c.confidence for c in chars)

    def confidences(text: str) -> tuple[float, ...] | None:
        if len(text) != len(char_text):
            return None
        return tuple(
            q if a == b else 1.0 - q for a, b, q in zip(text, char_text, char_conf, strict=True)
        )

    items = [(c.text, c.confidence, confidences(c.text)) for c in reading.candidates]
    if not items and reading.text:
        items = [(reading.text, 1.0, confidences(reading.text))]
    return _merged(items)


def event_candidates(event: PlateEvent) -> tuple[Candidate, ...]:
    """An event's voted text (with each character's vote share) and the texts its reads gave."""
    shares = tuple(c.confidence for c in event.characters)
    items: list[tuple[str, float, tuple[float, ...] | None]] = [
        (c.text, c.score, shares if c.text == event.text else None) for c in event.candidates
    ]
    if all(text != event.text for text, _, _ in items):
        items.insert(0, (event.text, event.confidence, shares))
    return _merged(items)
