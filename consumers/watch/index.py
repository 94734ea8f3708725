"""Finding the listed plates a reading matches without scoring every one of them.

`score_plate` runs a small dynamic programme per candidate and plate; a list of thousands of
plates would cost milliseconds per reading. A cheap lower bound rules most plates out first:
fold each confusion group onto one character, and count what one string's multiset of folded
characters has that the other's lacks. Every edit that changes that count costs at least
`MIN_PLAIN_EDIT_COST` (a confusion substitution changes nothing folded), so a plate whose bound
exceeds `max_distance(plate, threshold)` for every candidate cannot reach the threshold.
"""

from collections import Counter
from collections.abc import Iterable, Sequence

from consumers.watch.matcher import (
    CONFUSIONS,
    END_INDEL_COST,
    SUB_CONFIDENCE_FLOOR,
    SUB_COST,
    Candidate,
    Match,
    max_distance,
    score_plate,
)

__all__ = ["MIN_PLAIN_EDIT_COST", "PlateIndex", "folded"]

# The cheapest edit that is not a confusion substitution: a substitution read unsure,
# or a character dropped or added at an end.
MIN_PLAIN_EDIT_COST = min(SUB_COST * SUB_CONFIDENCE_FLOOR, END_INDEL_COST)


def _fold_table() -> dict[int, str]:
    # Groups sharing a character (1IT and 71) are one class.
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


def _bound(a: Counter[str], b: Counter[str]) -> float:
    return MIN_PLAIN_EDIT_COST * max(sum((a - b).values()), sum((b - a).values()))


class PlateIndex:
    """Normalised plates, each scored against a reading only when it could match."""

    def __init__(self, plates: Iterable[str]) -> None:
        self.plates = tuple(dict.fromkeys(plates))
        self._folded = [Counter(folded(p)) for p in self.plates]

    def __len__(self) -> int:
        return len(self.plates)

    def matches(self, candidates: Sequence[Candidate], threshold: float) -> list[Match]:
        """Every plate whose score reaches `threshold`, best first."""
        if not candidates or not self.plates:
            return []
        folds = [Counter(folded(c.text)) for c in candidates]
        found = []
        for plate, plate_fold in zip(self.plates, self._folded, strict=True):
            reach = max_distance(plate, threshold)
            if all(_bound(f, plate_fold) > reach for f in folds):
                continue
            match = score_plate(candidates, plate)
            if match.score >= threshold:
                found.append(match)
        found.sort(key=lambda m: (-m.score, m.plate))
        return found
