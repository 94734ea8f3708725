import pytest

from consumers.events.consensus import Read, align, vote


def read(text: str, confidence: float = 0.9) -> Read:
    return Read(text, (confidence,) * len(text))


def test_a_single_read_is_its_own_consensus_with_its_own_confidences() -> None:
    one = Read("ABC123", (0.9, 0.8, 0.95, 0.7, 0.9, 0.6))
    consensus = vote([one])
    assert (consensus.text, consensus.confidences) == ("ABC123", one.confidences)
    assert consensus.confidence == pytest.approx(0.6)
    assert consensus.candidates == (("ABC123", 1.0, 1),)


def test_each_character_is_voted_on_so_no_single_read_needs_to_be_right() -> None:
    reads = [read("A8C1234", 0.9), read("ABC1Z34", 0.9), read("ABCI234", 0.9)]
    consensus = vote(reads)
    assert consensus.text == "ABC1234"
    assert all(c.text != "ABC1234" for c in reads)
    assert consensus.candidates[0] == ("ABC1234", 0.0, 0)


def test_votes_are_weighted_by_character_confidence_not_counted() -> None:
    reads = [
        Read("8BC123", (0.2, 0.9, 0.9, 0.9, 0.9, 0.9)),
        Read("8BC123", (0.3, 0.9, 0.9, 0.9, 0.9, 0.9)),
        Read("ABC123", (0.95, 0.9, 0.9, 0.9, 0.9, 0.9)),
    ]
    consensus = vote(reads)
    assert consensus.text == "ABC123"
    assert consensus.confidences[0] == pytest.approx(0.95 / 3)


def test_a_missed_character_does_not_shift_the_ones_after_it() -> None:
    # Position by position, "ABC234" would vote 2 for "1", 3 for "2" ... and spoil the tail.
    reads = [read("ABC1234"), read("ABC234"), read("ABC1234", 0.6), read("ABC234", 0.5)]
    assert vote(reads).text == "ABC1234"


def test_an_extra_character_is_kept_only_when_most_of_the_weight_has_it() -> None:
    assert vote([read("ABC1234"), read("ABC12345", 0.4), read("ABC1234")]).text == "ABC1234"
    assert vote([read("1ABC123"), read("1ABC123"), read("ABC123", 0.5)]).text == "1ABC123"


def test_the_result_does_not_depend_on_the_order_of_the_reads() -> None:
    reads = [read("ABC1234", 0.7), read("A8C1234", 0.7), read("ABC124", 0.8), read("XBC1234", 0.3)]
    assert len({vote(order).text for order in (reads, reads[::-1], reads[1:] + reads[:1])}) == 1


def test_reads_of_nothing_count_but_do_not_vote() -> None:
    assert vote([read(""), read("")]).text == ""
    consensus = vote([read(""), read("ABC123", 0.8)])
    assert (consensus.text, consensus.confidence) == ("ABC123", pytest.approx(0.8))


def test_candidates_rank_distinct_texts_by_their_share_of_the_weight() -> None:
    reads = [read("ABC123", 0.9), read("ABC123", 0.9), read("A8C123", 0.2)]
    candidates = vote(reads).candidates
    assert [(t, n) for t, _, n in candidates] == [("ABC123", 2), ("A8C123", 1)]
    assert sum(s for _, s, _ in candidates) == pytest.approx(1.0)


def test_align_marks_insertions_and_deletions() -> None:
    assert align("ABC", "AXBC") == [(0, 0, 0), (1, None, 1), (1, 1, 2), (2, 2, 3)]
    assert align("ABC", "AC") == [(0, 0, 0), (1, 1, None), (2, 2, 1)]


def test_a_read_needs_one_confidence_per_character_and_vote_needs_reads() -> None:
    with pytest.raises(ValueError, match="confidences"):
        Read("ABC", (0.9,))
    with pytest.raises(ValueError, match="no reads"):
        vote([])


def test_far_away_frames_cannot_outvote_a_clear_one_with_one_confident_character() -> None:
    clear = read("ABC1230", 0.9)
    far = Read("XYZ4562", (0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.95))
    # Summing confidences would make the last character "2" (1.9 against 0.9).
    assert vote([clear, far, far]).text == "ABC1230"


def test_reads_too_weak_to_carry_evidence_are_still_voted_on_by_confidence() -> None:
    assert vote([read("ABC123", 0.4), read("ABC123", 0.35), read("A8C123", 0.3)]).text == "ABC123"
