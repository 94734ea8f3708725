"""Finding the listed plates a reading matches without scoring every one of them.

`score_plate` runs a small dynamic programme per candidate and plate; a list of thousands of
plates would cost a lot per reading. A cheap lower bound rules most plates out first: fold each
confusion group onto one character, and count what the candidate's multiset of folded
characters has that the plate's lacks (s) and the other way round (m). A confusion
substitution changes nothing folded; every other edit that fixes one of those involves a read
character (a substitution or an extra character, costing at least `least_read_cost` for its
confidence q) or is a gap of its own (END_INDEL_COST or more), each character at most once: so
the distance is at least the sum of the max(s, m) smallest per-character costs (END_INDEL_COST
beyond the candidate's length). A plate whose bound exceeds `max_distance` for every candidate
cannot reach the threshold. Computed for the whole list at once with numpy.
"""

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from consumers.watch.matcher import (
    CONFUSIONS,
    END_INDEL_COST,
    Candidate,
    Match,
    least_read_cost,
    max_distance,
    score_plate,
)

__all__ = ["PlateIndex", "distance_floor", "folded"]


def _fold_table() -> dict[int, str]:
    # Groups sharing a character (1IT and T7, MH and MN, 0DQO and C0) are one class.
    classes: list[set[str]] = []
    for group in CONFUSIONS:
        joined = set(group)
        for other in [c for c in classes if c & joined]:
            joined |= other
            classes.remove(other)
        classes.append(joined)
    return {ord(ch): min(cls) for cls in classes for ch in cls}


_FOLD = _fold_table()


def folded(text: str) -> str:
    """`text` with every confusion class written as one character."""
    return text.translate(_FOLD)


_ALPHABET = {ch: k for k, ch in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")}


def _counts(texts: Sequence[str]) -> npt.NDArray[np.int16]:
    """How often each folded character occurs in each text: one row of 36 per text."""
    counts = np.zeros((len(texts), len(_ALPHABET)), dtype=np.int16)
    for row, text in enumerate(texts):
        for ch in folded(text):
            counts[row, _ALPHABET[ch]] += 1
    return counts


def distance_floor(candidate: Candidate, longest: int) -> npt.NDArray[np.float64]:
    """floor[k]: the least a candidate pays for k folded characters to fix (k <= longest + its
    length)."""
    qs = candidate.confidences or ()
    if len(qs) != len(candidate.text):  # scored as sure characters (matcher._confidences_of)
        qs = (1.0,) * len(candidate.text)
    each = sorted(least_read_cost(ch, q) for ch, q in zip(candidate.text, qs, strict=True))
    each += [END_INDEL_COST] * longest
    return np.concatenate(([0.0], np.cumsum(each)))


class PlateIndex:
    """Normalised plates, each scored against a reading only when it could match."""

    def __init__(self, plates: Iterable[str]) -> None:
        self.plates = tuple(dict.fromkeys(plates))
        self._counts = _counts(self.plates)
        self._longest = max((len(p) for p in self.plates), default=0)

    def __len__(self) -> int:
        return len(self.plates)

    def matches(self, candidates: Sequence[Candidate], threshold: float) -> list[Match]:
        """Every plate whose score reaches `threshold`, best first."""
        if not candidates or not self.plates:
            return []
        reach = max_distance("", threshold)  # the same for every plate
        possible = np.zeros(len(self.plates), dtype=bool)
        for candidate, row in zip(candidates, _counts([c.text for c in candidates]), strict=True):
            missing = np.clip(self._counts - row, 0, None).sum(axis=1)
            surplus = np.clip(row - self._counts, 0, None).sum(axis=1)
            floor = distance_floor(candidate, self._longest)
            possible |= floor[np.maximum(surplus, missing)] <= reach
        found = []
        for k in np.flatnonzero(possible):
            match = score_plate(candidates, self.plates[k])
            if match.score >= threshold:
                found.append(match)
        found.sort(key=lambda m: (-m.score, m.plate))
        return found
