"""The soft format prior's table of US serial shapes."""

import pytest

from reader.plate_formats import fixed_characters, matches_format


@pytest.mark.parametrize("text", ["7ABC123", "ABC1234", "T123456C", "A12BCD", "AB12345", "0ABC123"])
def test_common_serials_have_a_known_shape(text: str) -> None:
    assert matches_format(text)


@pytest.mark.parametrize("text", ["", "GOBLUE", "7ABCI23X", "1T23456C", "ABCDEFGH"])
def test_vanity_and_garbled_strings_do_not(text: str) -> None:
    assert not matches_format(text)


def test_a_taxi_serial_has_its_t_and_c_fixed_and_others_none() -> None:
    assert fixed_characters("T123456C") == fixed_characters("Y123456C") == 2
    assert fixed_characters("1123456C") == fixed_characters("ABC1234") == 0
