"""From per-character distributions to plate strings: the top N candidates, with a format prior.

Each position offers its most likely classes (not only the arg-max); a character only one reader
saw may also be left out, with the probability that it is not there. A beam search keeps the
best strings by the sum of their log-probabilities; a string with the shape of a US serial
format (`reader.plate_formats`) then gains `prior_weight` nats, and `FIXED_CHAR_NATS` more for
each character its format fixes. That bonus is soft: it turns a
near tie between `5` and `S` or `0` and `D` by position, but visual evidence stronger than it
wins, so a vanity plate is never forced into a format. The candidates' scores, normalised over
the beam, are their posterior probabilities (OpenALPR's topN).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt

from plate_ocr.constants import CLASS_NAMES
from reader.plate_formats import fixed_characters, matches_format

__all__ = ["FIXED_CHAR_NATS", "PRIOR_WEIGHT", "Decoded", "decode"]

PRIOR_WEIGHT: Final = 1.0  # nats; chosen on the real dev set (see the model card)
# A format that fixes a character (the T and C of a New York City taxi, T123456C) admits 26
# times fewer strings per fixed letter than a format leaving it free, so by the size principle
# a string of its shape is that much likelier: log(26) nats per fixed character, on top of
# `prior_weight`. Not chosen on the dev set, where it turned "1642531C" into "T642531C": there
# the fused reader read 92.1% exactly with no such bonus, 92.3% at 0.5 nats, 92.7% at 1.5 and
# 92.8% from 2 to 5 (then adding the reference's Y123456C medallion format: 92.9%).
FIXED_CHAR_NATS: Final = math.log(26)
# Classes tried per position. With 3, a taxi's T at 15% behind 1, J and I never reached the
# format prior that would have settled it (the top confusion); on the real dev set, as
# labelled / as audited, 3: 1 419 / 1 434 plates exact, 4: 1 420 / 1 435 (that plate, nothing
# else changed), 5: as 4 (chosen on that set, December 2026).
_ALTERNATIVES: Final = 4
_MIN_PROB: Final = 0.01  # alternatives below this are not worth a beam slot
_BEAM: Final = 32
# A character seen by one reader only may be absent; one seen by both is taken as present.
_OPTIONAL_BELOW: Final = 0.9


class CharEvidence(Protocol):
    @property
    def probs(self) -> npt.NDArray[np.float64]: ...
    @property
    def presence(self) -> float: ...
    @property
    def source(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Decoded:
    """`picks[i]` is the class id chosen at position i, or -1 where the character was dropped.
    `candidates` are (text, posterior) pairs, best first; the first is the reading."""

    picks: tuple[int, ...]
    candidates: tuple[tuple[str, float], ...]

    @property
    def text(self) -> str:
        return self.candidates[0][0] if self.candidates else ""

    @property
    def posterior(self) -> float:
        return self.candidates[0][1] if self.candidates else 0.0


def decode(
    chars: Sequence[CharEvidence], *, top_n: int = 5, prior_weight: float = PRIOR_WEIGHT
) -> Decoded:
    """The best `top_n` plate strings for these characters (in reading order)."""
    if not chars:
        return Decoded(picks=(), candidates=())
    beam: list[tuple[float, tuple[int, ...]]] = [(0.0, ())]
    for char in chars:
        options = _options(char)
        grown = [(score + s, (*picks, c)) for score, picks in beam for c, s in options]
        grown.sort(key=lambda item: -item[0])
        beam = _unique_texts(grown, _BEAM)
    scored = [(score + _prior(_text(picks), prior_weight), picks) for score, picks in beam]
    scored.sort(key=lambda item: -item[0])
    scored = _unique_texts(scored, len(scored))
    best = scored[0][0]
    weights = np.exp(np.array([s for s, _ in scored]) - best)
    posterior = weights / weights.sum()
    candidates = tuple(
        (_text(picks), float(p)) for (_, picks), p in zip(scored[:top_n], posterior, strict=False)
    )
    return Decoded(picks=scored[0][1], candidates=candidates)


def _prior(text: str, prior_weight: float) -> float:
    if not matches_format(text):
        return 0.0
    return prior_weight + FIXED_CHAR_NATS * fixed_characters(text)


def _options(char: CharEvidence) -> list[tuple[int, float]]:
    order = np.argsort(-char.probs)[:_ALTERNATIVES]
    keep = [int(c) for c in order if char.probs[c] >= _MIN_PROB] or [int(order[0])]
    if char.source == "both" or char.presence >= _OPTIONAL_BELOW:
        return [(c, float(np.log(char.probs[c]))) for c in keep]
    present = float(np.log(max(char.presence, 1e-6)))
    return [(c, present + float(np.log(char.probs[c]))) for c in keep] + [
        (-1, float(np.log(max(1.0 - char.presence, 1e-6))))
    ]


def _text(picks: tuple[int, ...]) -> str:
    return "".join(CLASS_NAMES[c] for c in picks if c >= 0)


def _unique_texts(
    ranked: list[tuple[float, tuple[int, ...]]], limit: int
) -> list[tuple[float, tuple[int, ...]]]:
    """Best-first, one entry per distinct text (dropping a character two ways gives one text)."""
    seen: set[str] = set()
    out = []
    for score, picks in ranked:
        text = _text(picks)
        if text not in seen:
            seen.add(text)
            out.append((score, picks))
            if len(out) == limit:
                break
    return out
