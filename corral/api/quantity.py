"""Resource quantities ("500m", "128Mi", "1.5", "2e3"), as Kubernetes reads them.

Values are exact ``Decimal``s, never floats. Parsing reproduces apimachinery's
``resource.ParseQuantity`` (``pkg/api/resource/quantity.go``), including its
less obvious rules:

- The value is kept down to the nano (1e-9) and any finer non-zero part is
  rounded away from zero: "0.9n" is 1n and "-1.5n" is -2n.
- A binary-SI quantity ("Ki".."Ei") is capped at 2**63-1; a decimal one is not.
- A number may be written without digits before or after the point ("1.",
  ".5"), and, as Kubernetes does, a bare sign, a bare point or a bare suffix
  ("-", ".", "m", "Mi") is zero. "Pi", "Ei" and "e-10" alone are errors,
  because Kubernetes sends them down a slower path that needs a digit.

Formatting reproduces ``Quantity.String()``: the largest suffix that keeps the
value an integer ("1500m", "1536Mi", "1G", "1e21").
"""

from __future__ import annotations

import enum
import functools
import math
import re
from dataclasses import dataclass
from decimal import MAX_EMAX, MIN_EMIN, Decimal, localcontext

__all__ = [
    "QuantityError",
    "canonicalize_quantity",
    "format_quantity",
    "is_valid_quantity",
    "parse_quantity",
    "to_int",
    "to_milli",
]

_SPLIT_RE = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_ERR_FORMAT = f"quantities must match the regular expression '{_SPLIT_RE}'"
_ERR_NUMERIC = "unable to parse numeric part of quantity"
_ERR_SUFFIX = "unable to parse quantity's suffix"

_INT64_MAX = 2**63 - 1
_INT64_MIN = -(2**63)
_NANO = -9
# Digits an int64 is sure to hold; beyond this Kubernetes leaves its int64
# fast path, and only the fast path can keep the caller's spelling.
_MAX_INT64_FACTORS = 18
_DIGITS = frozenset("0123456789")
_SUFFIX_CHARS = frozenset("eEinumkKMGTP")
_INT64_TEXT_RE = re.compile(r"[+-]?[0-9]+")


class QuantityError(ValueError):
    """A quantity that Kubernetes would refuse to parse."""

    def __init__(self, message: str, quantity: object = None) -> None:
        super().__init__(message)
        self.quantity = quantity


class _Format(enum.Enum):
    DECIMAL_EXPONENT = "DecimalExponent"
    BINARY_SI = "BinarySI"
    DECIMAL_SI = "DecimalSI"


_DECIMAL_SUFFIXES: dict[str, int] = {
    "n": -9,
    "u": -6,
    "m": -3,
    "": 0,
    "k": 3,
    "M": 6,
    "G": 9,
    "T": 12,
    "P": 15,
    "E": 18,
}
_BINARY_SUFFIXES: dict[str, int] = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_BY_EXPONENT = {exp: suffix for suffix, exp in _DECIMAL_SUFFIXES.items()}
_BINARY_BY_POWER = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
_BINARY_PRINT_MAX_DIGITS = 40


@dataclass(frozen=True, slots=True)
class _Scanned:
    positive: bool
    value: str
    num: str
    denom: str
    suffix: str


def _scan(text: str) -> _Scanned:
    """Split a quantity as Kubernetes' parseQuantityString does."""
    positive = True
    pos = 0
    end = len(text)
    if text[0] == "-":
        positive = False
        pos = 1
    elif text[0] == "+":
        pos = 1

    while True:
        if pos >= end:
            return _Scanned(positive, "0", "0", "", "")
        if text[pos] != "0":
            break
        pos += 1

    i = pos
    while i < end and text[i] in _DIGITS:
        i += 1
    num = text[pos:i]
    if i >= end:
        return _Scanned(positive, text, num, "", "")
    pos = i
    if not num:
        num = "0"

    denom = ""
    if text[pos] == ".":
        pos += 1
        i = pos
        while i < end and text[i] in _DIGITS:
            i += 1
        denom = text[pos:i]
        if i >= end:
            return _Scanned(positive, text, num, denom, "")
        pos = i
    value = text[:pos]

    suffix_start = pos
    while pos < end and text[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    if pos < end:
        raise QuantityError(_ERR_FORMAT, text)
    return _Scanned(positive, value, num, denom, text[suffix_start:])


def _parse_int64(text: str) -> int | None:
    """strconv.ParseInt(text, 10, 64), without Python's int() leniencies."""
    if not _INT64_TEXT_RE.fullmatch(text):
        return None
    # Trimmed first so that a long run of digits is refused without being
    # converted (and without hitting Python's int-string length limit).
    significant = text.lstrip("+-").lstrip("0")
    if len(significant) > 19:
        return None
    value = int(significant or "0")
    if text[0] == "-":
        value = -value
    if value < _INT64_MIN or value > _INT64_MAX:
        return None
    return value


def _interpret(suffix: str) -> tuple[int, int, _Format] | None:
    if suffix in _DECIMAL_SUFFIXES:
        return 10, _DECIMAL_SUFFIXES[suffix], _Format.DECIMAL_SI
    if suffix in _BINARY_SUFFIXES:
        return 2, _BINARY_SUFFIXES[suffix], _Format.BINARY_SI
    if len(suffix) > 1 and suffix[0] in "eE":
        digits = suffix[1:]
        exponent = _parse_int64(digits)
        if exponent is None:
            return None
        # Kubernetes narrows the int64 to an int32 without a range check.
        exponent = (exponent + 2**31) % 2**32 - 2**31
        return 10, exponent, _Format.DECIMAL_EXPONENT
    return None


def _finite_parts(value: Decimal) -> tuple[int, tuple[int, ...], int]:
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise QuantityError(f"{value} is not a finite quantity")
    return sign, digits, exponent


def _round_up_to_nano(value: Decimal) -> Decimal:
    """Round a non-zero magnitude finer than 1e-9 away from zero."""
    sign, digits, exponent = _finite_parts(value)
    if exponent >= _NANO:
        return value
    coefficient = "".join(map(str, digits))
    dropped = _NANO - exponent
    kept = coefficient[:-dropped] if dropped < len(coefficient) else ""
    rest = coefficient[-dropped:] if dropped < len(coefficient) else coefficient
    if rest.strip("0"):
        kept = _increment(kept)
    return Decimal(f"{'-' if sign else ''}{kept or '0'}E{_NANO}")


def _increment(digits: str) -> str:
    """Add one to a decimal digit string of any length."""
    stripped = digits.rstrip("9")
    nines = len(digits) - len(stripped)
    if not stripped:
        return "1" + "0" * nines
    return stripped[:-1] + str(int(stripped[-1]) + 1) + "0" * nines


@dataclass(frozen=True, slots=True)
class _Parsed:
    value: Decimal
    format: _Format
    # The caller's own spelling, which Kubernetes keeps and re-emits when its
    # fast path judges it canonical (so "+1" or "012" come back unchanged).
    cached: str | None


def _coerce(text: str | int | float) -> str:
    if isinstance(text, bool):
        raise QuantityError(_ERR_FORMAT, text)
    if isinstance(text, int):
        return str(text)
    if isinstance(text, float):
        if not math.isfinite(text):
            raise QuantityError(_ERR_FORMAT, text)
        # repr is the shortest text that reads back as the same float, which
        # is how the number was most likely written in the JSON or YAML.
        return repr(text)
    if isinstance(text, str):
        return text
    raise QuantityError(_ERR_FORMAT, text)


def _parse(raw: str | int | float) -> _Parsed:
    # Manifests repeat a handful of spellings ("100m", "64Mi") endlessly; the
    # parse is pure, so each is done once. Long inputs are not worth keeping.
    if isinstance(raw, str) and len(raw) <= 32:
        return _parse_cached(raw)
    return _parse_uncached(raw)


@functools.lru_cache(maxsize=4096)
def _parse_cached(raw: str) -> _Parsed:
    return _parse_uncached(raw)


def _parse_uncached(raw: str | int | float) -> _Parsed:
    text = _coerce(raw)
    if not text:
        raise QuantityError(_ERR_FORMAT, raw)
    if text == "0":
        return _Parsed(Decimal(0), _Format.DECIMAL_SI, "0")

    scanned = _scan(text)
    interpreted = _interpret(scanned.suffix)
    if interpreted is None:
        raise QuantityError(_ERR_SUFFIX, raw)
    base, exponent, fmt = interpreted
    num, denom = scanned.num, scanned.denom
    shifted = num + denom

    fast = False
    cached: str | None = None
    if base == 10:
        scale = exponent - len(denom)
        fast = _MAX_INT64_FACTORS - len(shifted) >= 0 and scale >= _NANO
        if fast and scale % 3 == 0 and not shifted.endswith("000") and shifted[0] != "0":
            cached = text
        magnitude = Decimal(f"{shifted}E{scale}")
    else:
        if not denom:
            precision = 15 - len(num) - (exponent * 3) // 10 - 1
            # precision >= 0 bounds num to a few digits, so int() is safe.
            fast = precision >= 0 and int(num) << exponent <= _INT64_MAX
            if fast and int(num) & 0x07 != 0:
                cached = text
        with localcontext() as ctx:
            # Enough digits for the product to be exact: 2**60 has 19.
            ctx.prec = len(shifted) + 20
            ctx.Emax = MAX_EMAX
            ctx.Emin = MIN_EMIN
            magnitude = Decimal(f"{shifted}E-{len(denom)}") * Decimal(2**exponent)

    if not fast and not any(ch in _DIGITS for ch in scanned.value):
        raise QuantityError(_ERR_NUMERIC, raw)

    magnitude = _round_up_to_nano(magnitude)
    if fmt is _Format.BINARY_SI and magnitude > _INT64_MAX:
        magnitude = Decimal(_INT64_MAX)
    if fmt is _Format.BINARY_SI and 0 < magnitude < 1:
        fmt = _Format.DECIMAL_SI
    if magnitude == 0:
        return _Parsed(Decimal(0), fmt, cached)
    return _Parsed(magnitude if scanned.positive else -magnitude, fmt, cached)


def parse_quantity(text: str | int | float) -> Decimal:
    """The exact value of a quantity, or ``QuantityError``.

    Numbers are read through their shortest text form, as if they had
    arrived unquoted in JSON. Surrounding whitespace is an error.
    """
    return _parse(text).value


def is_valid_quantity(text: object) -> bool:
    try:
        _parse(text)  # type: ignore[arg-type]
    except QuantityError:
        return False
    return True


def canonicalize_quantity(text: str | int | float) -> str:
    """The quantity as the API server would echo it back after a round trip.

    "1.5Gi" comes back as "1536Mi", "0.5" as "500m" and "1e3" keeps its
    exponent form; a spelling Kubernetes already judges canonical is kept.
    """
    parsed = _parse(text)
    if parsed.cached is not None:
        return parsed.cached
    return _format(parsed.value, parsed.format)


def _to_integer(value: Decimal, shift: int) -> int:
    """``value * 10**shift``, rounded away from zero, as an int64."""
    if value.is_zero():
        return 0
    sign, digit_tuple, exponent = _finite_parts(value)
    digits = "".join(map(str, digit_tuple)).lstrip("0")
    exponent += shift
    # Worked on as text, and checked before any conversion, so that
    # "1e2147483647" or a 5000-digit fraction costs nothing to refuse.
    int_digits = len(digits) + exponent
    if int_digits > 20:
        raise QuantityError(f"quantity {value} does not fit in an int64")
    if exponent >= 0:
        whole, fraction = digits + "0" * exponent, ""
    elif int_digits <= 0:
        whole, fraction = "", digits
    else:
        whole, fraction = digits[:int_digits], digits[int_digits:]
    result = int(whole or "0") + (1 if fraction.strip("0") else 0)
    result = -result if sign else result
    if result < _INT64_MIN or result > _INT64_MAX:
        raise QuantityError(f"quantity {value} does not fit in an int64")
    return result


def to_int(q: Decimal) -> int:
    """``Quantity.Value()``: the value rounded away from zero ("1.1" -> 2)."""
    return _to_integer(Decimal(q), 0)


def to_milli(q: Decimal) -> int:
    """``Quantity.MilliValue()``: thousandths rounded away from zero ("0.1m" -> 1)."""
    return _to_integer(Decimal(q), 3)


def _mantissa_and_exponent(value: Decimal) -> tuple[str, int]:
    """Digits and a power of ten that is a multiple of 3, the largest possible."""
    sign, digit_tuple, exponent = _finite_parts(value)
    digits = "".join(map(str, digit_tuple))
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    floored = exponent - exponent % 3
    mantissa = stripped + "0" * (exponent - floored)
    return ("-" if sign else "") + mantissa, floored


def _format(value: Decimal, fmt: _Format) -> str:
    if value.is_zero():
        return "0"
    if fmt is _Format.BINARY_SI:
        # Binary form needs an integer of at least 1024; the adjusted()
        # bound keeps absurd magnitudes from being expanded into a Python int.
        if (
            -1024 < value < 1024
            or value.adjusted() > _BINARY_PRINT_MAX_DIGITS
            or value != value.to_integral_value()
        ):
            fmt = _Format.DECIMAL_SI
        else:
            number = int(value)
            power = 0
            # Stopping at Ei keeps values above 1024Ei printable; Kubernetes
            # cannot parse such a binary quantity in the first place.
            while power < len(_BINARY_BY_POWER) - 1 and number % 1024 == 0:
                number //= 1024
                power += 1
            return f"{number}{_BINARY_BY_POWER[power]}"

    mantissa, exponent = _mantissa_and_exponent(value)
    if fmt is _Format.DECIMAL_SI and exponent in _DECIMAL_BY_EXPONENT:
        return mantissa + _DECIMAL_BY_EXPONENT[exponent]
    # DecimalSI has no suffix below n or above E; Kubernetes then falls back
    # to exponent notation rather than dropping the magnitude.
    return mantissa if exponent == 0 else f"{mantissa}e{exponent}"


def format_quantity(value: Decimal | int, binary: bool = False) -> str:
    """Print a value as Kubernetes prints a DecimalSI or BinarySI quantity.

    0.5 -> "500m", 1500 -> "1500", 2000 -> "2k", 1e21 -> "1e21"; with
    ``binary=True`` 1073741824 -> "1Gi" and 1536 -> "1536". Binary form is used
    only for integers of magnitude 1024 or more, as in Kubernetes; any other
    value prints in decimal.
    """
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise QuantityError(f"cannot format {value!r} as a quantity")
    dec = Decimal(value)
    if not dec.is_finite():
        raise QuantityError(f"cannot format {value} as a quantity")
    return _format(dec, _Format.BINARY_SI if binary else _Format.DECIMAL_SI)
