import pyarrow as pa
import pytest

from receiver.decoding.buffers import complete_utf8, one_value, validate_utf8

EURO = "€".encode()  # three bytes
EMOJI = "😀".encode()  # four bytes


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_a_sequence_cut_off_at_the_end_is_left_for_the_next_read(cut: int) -> None:
    data = b"ab" + EMOJI[:cut]
    assert complete_utf8(data) == 2


def test_complete_text_is_complete_whatever_it_ends_with() -> None:
    for data in (b"", b"abc", b"a" + EURO, b"a" + EMOJI):
        assert complete_utf8(data) == len(data)


def test_invalid_utf8_is_refused_and_valid_text_passes() -> None:
    validate_utf8(memoryview(b"ok " + EURO + EMOJI))
    with pytest.raises(pa.ArrowInvalid):
        validate_utf8(b"bad \xff byte")


def test_one_value_shares_the_buffer_it_is_given() -> None:
    data = b'{"a": 1},{"b": 2}'
    array = one_value(data, pa.large_binary())
    assert len(array) == 1
    assert array[0].as_py() == data
    assert array.buffers()[2].address == pa.py_buffer(data).address
