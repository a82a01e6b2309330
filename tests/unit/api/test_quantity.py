"""Resource quantities, checked against apimachinery's quantity_test.go."""

from __future__ import annotations

from decimal import Decimal

import pytest

from corral.api.quantity import (
    QuantityError,
    canonicalize_quantity,
    format_quantity,
    is_valid_quantity,
    parse_quantity,
    to_int,
    to_milli,
)

FORMAT_ERROR = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)
SUFFIX_ERROR = "unable to parse quantity's suffix"
NUMERIC_ERROR = "unable to parse numeric part of quantity"

# (text, exact value)
PARSE_OK: list[tuple[str | int | float, str]] = [
    ("0", "0"),
    ("0Ki", "0"),
    ("1", "1"),
    ("500m", "0.5"),
    ("128Mi", "134217728"),
    ("1Ki", "1024"),
    ("3Ei", str(3 * 2**60)),
    ("5n", "0.000000005"),
    ("4u", "0.000004"),
    ("8k", "8000"),
    ("1E", "1e18"),
    ("12E", "12e18"),
    ("1.5", "1.5"),
    ("2e3", "2000"),
    ("1E-3", "0.001"),
    ("1.3E+6", "1300000"),
    ("0.5e-2", "0.005"),
    ("100.035k", "100035"),
    ("0.5Mi", "524288"),
    ("100.035Ki", "102435.84"),
    ("-1.5", "-1.5"),
    ("-500m", "-0.5"),
    ("+1Gi", "1073741824"),
    ("1.", "1"),
    (".5", "0.5"),
    ("1.G", "1e9"),
    # Finer than a nano rounds away from zero.
    ("0.9n", "1e-9"),
    ("-0.9n", "-1e-9"),
    ("3.001n", "4e-9"),
    ("1.1E-9", "2e-9"),
    ("0.00000012345", "124e-9"),
    ("0.000000000001Ki", "2e-9"),
    # Binary SI is capped at 2**63-1; decimal is not.
    ("9Ei", str(2**63 - 1)),
    ("-9Ei", str(-(2**63 - 1))),
    ("10E", "1e19"),
    # Kubernetes reads a digitless number as zero (apimachinery issue #165).
    ("-", "0"),
    (".", "0"),
    ("Mi", "0"),
    ("k", "0"),
    # Longer than Python's int() will convert from text.
    ("1" + "0" * 5000, "1e5000"),
    ("0." + "0" * 5000 + "1", "1e-9"),
    ("1e" + "0" * 5000 + "1", "10"),
    # Numbers arrive as unquoted JSON would.
    (3, "3"),
    (-2, "-2"),
    (1.5, "1.5"),
    (1e-7, "1e-7"),
]


@pytest.mark.parametrize(("text", "value"), PARSE_OK)
def test_parse(text: str | int | float, value: str) -> None:
    assert parse_quantity(text) == Decimal(value)
    assert is_valid_quantity(text)


# (text, the Kubernetes error)
PARSE_BAD: list[tuple[object, str]] = [
    ("", FORMAT_ERROR),
    (" 1", FORMAT_ERROR),
    ("1 ", FORMAT_ERROR),
    ("1 Gi", FORMAT_ERROR),
    ("1.5.5", FORMAT_ERROR),
    ("1.1.M", FORMAT_ERROR),
    ("1+1.0M", FORMAT_ERROR),
    ("1KiB", FORMAT_ERROR),
    ("aoeu", FORMAT_ERROR),
    ("0.1am", FORMAT_ERROR),
    ("1e5m", FORMAT_ERROR),
    ("0.1mi", SUFFIX_ERROR),
    (".5i", SUFFIX_ERROR),
    ("1i", SUFFIX_ERROR),
    ("-3.01i", SUFFIX_ERROR),
    ("-3.01e-", SUFFIX_ERROR),
    ("1ee5", SUFFIX_ERROR),
    ("1e99999999999999999999", SUFFIX_ERROR),
    ("1mi", SUFFIX_ERROR),
    ("Pi", NUMERIC_ERROR),
    ("e-10", NUMERIC_ERROR),
    (float("nan"), FORMAT_ERROR),
    (True, FORMAT_ERROR),
    (None, FORMAT_ERROR),
]


@pytest.mark.parametrize(("text", "message"), PARSE_BAD)
def test_parse_rejects(text: object, message: str) -> None:
    with pytest.raises(QuantityError) as caught:
        parse_quantity(text)  # type: ignore[arg-type]
    assert str(caught.value) == message
    assert not is_valid_quantity(text)


# (value, binary, Kubernetes' String())
FORMAT = [
    (Decimal(0), False, "0"),
    (Decimal(0), True, "0"),
    (Decimal("0.5"), False, "500m"),
    (Decimal("0.5"), True, "500m"),
    (Decimal("1.08"), False, "1080m"),
    (Decimal("0.00000108"), False, "1080n"),
    (Decimal(1000), False, "1k"),
    (Decimal(1500), False, "1500"),
    (Decimal(1234567 * 10**6), False, "1234567M"),
    (Decimal("1e18"), False, "1E"),
    (Decimal("1e21"), False, "1e21"),
    (Decimal("5e21"), False, "5e21"),
    (Decimal("1e-12"), False, "1e-12"),
    (Decimal(-1500), False, "-1500"),
    (Decimal("-0.001"), False, "-1m"),
    (Decimal(1073741824), True, "1Gi"),
    (Decimal(300 * 2**20), True, "300Mi"),
    (Decimal(1001 * 2**30), True, "1001Gi"),
    (Decimal(2**40), True, "1Ti"),
    (Decimal(5), True, "5"),
    (Decimal(1025), True, "1025"),
    (Decimal(1536), True, "1536"),
    (Decimal("1024.5"), True, "1024500m"),
    (Decimal(-2048), True, "-2Ki"),
    (Decimal(2**63 - 1), True, "9223372036854775807"),
    (Decimal(2**70), True, "1024Ei"),
    (Decimal(1073741824), False, "1073741824"),
    (7, False, "7"),
]


@pytest.mark.parametrize(("value", "binary", "expected"), FORMAT)
def test_format(value: Decimal, binary: bool, expected: str) -> None:
    assert format_quantity(value, binary) == expected


@pytest.mark.parametrize("bad", [Decimal("NaN"), Decimal("Infinity"), 1.5, "1"])
def test_format_rejects(bad: object) -> None:
    with pytest.raises(QuantityError):
        format_quantity(bad)  # type: ignore[arg-type]


# (input, what the API server echoes back)
CANONICAL = [
    ("1Ki", "1Ki"),
    ("1024Mi", "1Gi"),
    ("1.5Gi", "1536Mi"),
    ("1000M", "1G"),
    ("1.5", "1500m"),
    ("0.5", "500m"),
    ("1000m", "1"),
    ("1e3", "1e3"),
    ("1.3E+6", "1300e3"),
    ("0.5e-1", "50e-3"),
    (".001Ki", "1024m"),
    (".000000000001Ki", "2n"),
    ("9Ei", "9223372036854775807"),
    ("-1.5Gi", "-1536Mi"),
    # Spellings Kubernetes judges canonical are kept as written.
    ("+1", "+1"),
    ("012", "012"),
    ("100.035k", "100.035k"),
    ("1E3", "1E3"),
]


@pytest.mark.parametrize(("text", "expected"), CANONICAL)
def test_canonicalize(text: str, expected: str) -> None:
    assert canonicalize_quantity(text) == expected
    assert parse_quantity(canonicalize_quantity(text)) == parse_quantity(text)


# (text, Value(), MilliValue())
ROUNDING = [
    ("0", 0, 0),
    ("1", 1, 1000),
    ("1.1", 2, 1100),
    ("100m", 1, 100),
    ("0.1m", 1, 1),
    ("1n", 1, 1),
    ("-1.5", -2, -1500),
    ("-0.1m", -1, -1),
    ("1Gi", 2**30, 2**30 * 1000),
    ("9Ei", 2**63 - 1, None),
]


@pytest.mark.parametrize(("text", "value", "milli"), ROUNDING)
def test_to_int_and_to_milli(text: str, value: int, milli: int | None) -> None:
    q = parse_quantity(text)
    assert to_int(q) == value
    if milli is None:
        with pytest.raises(QuantityError, match="does not fit in an int64"):
            to_milli(q)
    else:
        assert to_milli(q) == milli


@pytest.mark.parametrize("text", ["10E", "1e2147483647", "-10E"])
def test_to_int_overflow_is_an_error(text: str) -> None:
    with pytest.raises(QuantityError, match="does not fit in an int64"):
        to_int(parse_quantity(text))


def test_error_keeps_the_input() -> None:
    with pytest.raises(QuantityError) as caught:
        parse_quantity("1KiB")
    assert caught.value.quantity == "1KiB"
    assert isinstance(caught.value, ValueError)
