import pytest

from receiver.decoding.errors import DecodeError
from receiver.decoding.jsonvalue import MAX_DEPTH, show_byte, value_end


@pytest.mark.parametrize(
    "text",
    [
        b'{"a": 1}',
        b'{"a": {"b": [1, 2, {"c": "]}"}]}}',
        b'"a \\" quoted ] string"',
        b"[[], {}, []]",
        b"-12.5e3",
        b"true",
    ],
)
def test_a_whole_value_ends_where_its_text_does(text: bytes) -> None:
    assert value_end(text + b" , next", 0, True) == len(text)


@pytest.mark.parametrize("text", [b'{"a": [1, 2', b'"open string', b'{"a": "}'])
def test_a_value_cut_off_by_the_buffer_is_not_ended_yet(text: bytes) -> None:
    assert value_end(text, 0, False) == -1


def test_a_number_at_the_end_of_a_buffer_ends_only_at_the_end_of_the_stream() -> None:
    assert value_end(b"123", 0, False) == -1
    assert value_end(b"123", 0, True) == 3


def test_nesting_deeper_than_the_limit_is_refused_before_any_parser_sees_it() -> None:
    deep = b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)
    with pytest.raises(DecodeError, match=f"deeper than {MAX_DEPTH} levels"):
        value_end(deep, 0, True)
    allowed = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert value_end(allowed, 0, True) == len(allowed)


def test_a_mismatched_bracket_is_named() -> None:
    with pytest.raises(DecodeError, match="mismatched '}'"):
        value_end(b"[1, 2}", 0, True)


def test_a_byte_that_cannot_start_a_value_is_named_printably() -> None:
    with pytest.raises(DecodeError, match="unexpected ':' where a JSON value starts"):
        value_end(b": 1", 0, True)
    assert show_byte(0x07) == "byte 0x07"
