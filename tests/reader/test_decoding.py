"""Top-N decoding with the format prior, on hand-made character distributions."""

from dataclasses import dataclass

import numpy as np
import pytest

from plate_ocr.constants import CLASS_NAMES
from reader.decoding import decode


@dataclass(frozen=True)
class Char:
    probs: np.ndarray
    presence: float = 1.0
    source: str = "both"


def _char(weights: dict[str, float], **kw: object) -> Char:
    p = np.full(len(CLASS_NAMES), 1e-4)
    for c, w in weights.items():
        p[CLASS_NAMES.index(c)] = w
    return Char(probs=p / p.sum(), **kw)  # type: ignore[arg-type]


def _sure(text: str) -> list[Char]:
    return [_char({c: 0.99}) for c in text]


def test_the_best_string_is_the_arg_max_without_a_prior() -> None:
    chars = [*_sure("ABC"), _char({"S": 0.55, "5": 0.45}), *_sure("23")]
    assert decode(chars, prior_weight=0.0).text == "ABCS23"


def test_the_prior_turns_a_near_tie_towards_a_us_format() -> None:
    chars = [*_sure("ABC"), _char({"S": 0.55, "5": 0.45}), *_sure("234")]  # ABC-1234 shape
    assert decode(chars, prior_weight=1.0).text == "ABC5234"


def test_a_format_that_fixes_characters_outweighs_a_confident_lookalike() -> None:
    # A New York City taxi's T read as a 1 at 85%: "1642531C" has the shape of Montana's
    # 12-34567C too, so only the taxi format's fixed T and C can turn it.
    chars = [_char({"1": 0.85, "T": 0.15}), *_sure("642531C")]
    assert decode(chars, prior_weight=1.0).text == "T642531C"
    # Only the whole shape earns it: without the C, the 1 stays.
    assert decode(chars[:-1], prior_weight=1.0).text == "1642531"
    no_c = [_char({"1": 0.85, "T": 0.15}), *_sure("6425317")]
    assert decode(no_c, prior_weight=1.0).text == "16425317"


def test_the_prior_never_forces_a_vanity_plate() -> None:
    chars = _sure("GOBLUE")
    assert decode(chars, prior_weight=1.0).text == "GOBLUE"


def test_candidates_are_distinct_best_first_and_probabilities() -> None:
    chars = [*_sure("7AB"), _char({"C": 0.5, "G": 0.3, "0": 0.2}), *_sure("123")]
    decoded = decode(chars, top_n=3, prior_weight=0.0)
    texts = [t for t, _ in decoded.candidates]
    probs = [p for _, p in decoded.candidates]
    assert texts == ["7ABC123", "7ABG123", "7AB0123"]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-9
    assert decoded.posterior == pytest.approx(probs[0])


def test_a_doubtful_single_reader_character_may_be_left_out() -> None:
    chars = [*_sure("AB"), _char({"X": 0.99}, presence=0.2, source="recogniser"), *_sure("12")]
    decoded = decode(chars, prior_weight=0.0)
    assert decoded.text == "AB12"
    assert decoded.picks[2] == -1
    assert "ABX12" in [t for t, _ in decoded.candidates]


def test_nothing_read_gives_no_candidates() -> None:
    decoded = decode([], prior_weight=1.0)
    assert decoded.text == "" and decoded.candidates == () and decoded.posterior == 0.0
