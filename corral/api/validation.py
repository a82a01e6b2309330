"""Name, label and value rules, worded as Kubernetes words them.

Each check returns the list of problems it found (empty when the value is
valid), so that callers can attach them to a field path the way the API
server does: ``metadata.name: Invalid value: "Foo": <message>``.

The rules and messages follow apimachinery's ``pkg/util/validation``. Lengths
are counted in UTF-8 bytes, as Go's ``len`` counts them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = [
    "DNS1035_LABEL_MAX_LENGTH",
    "DNS1123_LABEL_MAX_LENGTH",
    "DNS1123_SUBDOMAIN_MAX_LENGTH",
    "LABEL_VALUE_MAX_LENGTH",
    "QUALIFIED_NAME_MAX_LENGTH",
    "TOTAL_ANNOTATION_SIZE_LIMIT_BYTES",
    "is_config_map_key",
    "is_dns1035_label",
    "is_dns1123_label",
    "is_dns1123_subdomain",
    "is_env_var_name",
    "is_ip_address",
    "is_qualified_name",
    "is_valid_label_value",
    "is_valid_port_name",
    "is_valid_port_number",
    "validate_annotations_size",
]

DNS1123_LABEL_MAX_LENGTH = 63
DNS1123_SUBDOMAIN_MAX_LENGTH = 253
DNS1035_LABEL_MAX_LENGTH = 63
QUALIFIED_NAME_MAX_LENGTH = 63
LABEL_VALUE_MAX_LENGTH = 63
TOTAL_ANNOTATION_SIZE_LIMIT_BYTES = 256 * 1024

_PORT_NAME_MAX_LENGTH = 15


def _max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def _empty_error() -> str:
    return "must be non-empty"


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    # Reproduces Go's RegexError byte for byte, including the doubled space
    # before each " or ", because users grep for these messages.
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    out = msg + " (e.g. "
    for i, example in enumerate(examples):
        if i > 0:
            out += " or "
        out += f"'{example}', "
    return out + f"regex used for validation is '{fmt}')"


def _byte_len(value: str) -> int:
    return len(value.encode("utf-8", "surrogatepass"))


_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_ERR = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_LABEL_RE = re.compile(_DNS1123_LABEL_FMT)

_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_ERR = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_RE = re.compile(_DNS1123_SUBDOMAIN_FMT)

_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_ERR = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
    "start with an alphabetic character, and end with an alphanumeric character"
)
_DNS1035_LABEL_RE = re.compile(_DNS1035_LABEL_FMT)

_QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QNAME_ERR = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_QNAME_RE = re.compile(_QNAME_FMT)

_LABEL_VALUE_FMT = "(" + _QNAME_FMT + ")?"
_LABEL_VALUE_ERR = (
    "a valid label must be an empty string or consist of alphanumeric characters, "
    "'-', '_' or '.', and must start and end with an alphanumeric character"
)
_LABEL_VALUE_RE = re.compile(_LABEL_VALUE_FMT)

_PORT_NAME_CHARSET_RE = re.compile("[-a-z0-9]+")
_PORT_NAME_LETTER_RE = re.compile("[a-z]")

_ENV_VAR_NAME_FMT = "[-._a-zA-Z][-._a-zA-Z0-9]*"
_ENV_VAR_NAME_ERR = (
    "a valid environment variable name must consist of alphabetic characters, digits, "
    "'_', '-', or '.', and must not start with a digit"
)
_ENV_VAR_NAME_RE = re.compile(_ENV_VAR_NAME_FMT)
_RELAXED_ENV_VAR_NAME_ERR = (
    "a valid environment variable name must consist only of printable ASCII characters "
    "other than '='"
)

_CONFIG_MAP_KEY_FMT = "[-._a-zA-Z0-9]+"
_CONFIG_MAP_KEY_ERR = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
_CONFIG_MAP_KEY_RE = re.compile(_CONFIG_MAP_KEY_FMT)

_IP_ERR = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"


def is_dns1123_label(value: str) -> list[str]:
    """RFC 1123 label: most object names (pods' containers, namespaces, ...)."""
    errs: list[str] = []
    if _byte_len(value) > DNS1123_LABEL_MAX_LENGTH:
        errs.append(_max_len_error(DNS1123_LABEL_MAX_LENGTH))
    if not _DNS1123_LABEL_RE.fullmatch(value):
        if _DNS1123_SUBDOMAIN_RE.fullmatch(value):
            # A valid subdomain that is not a valid label can only be failing
            # on its dots, the length having been reported above.
            errs.append("must not contain dots")
        else:
            errs.append(_regex_error(_DNS1123_LABEL_ERR, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    """RFC 1123 subdomain: the default rule for object names."""
    errs: list[str] = []
    if _byte_len(value) > DNS1123_SUBDOMAIN_MAX_LENGTH:
        errs.append(_max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH))
    if not _DNS1123_SUBDOMAIN_RE.fullmatch(value):
        errs.append(_regex_error(_DNS1123_SUBDOMAIN_ERR, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    """RFC 1035 label: Service names, which must not start with a digit."""
    errs: list[str] = []
    if _byte_len(value) > DNS1035_LABEL_MAX_LENGTH:
        errs.append(_max_len_error(DNS1035_LABEL_MAX_LENGTH))
    if not _DNS1035_LABEL_RE.fullmatch(value):
        errs.append(_regex_error(_DNS1035_LABEL_ERR, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def is_qualified_name(value: str) -> list[str]:
    """Label and annotation keys: ``[prefix/]name`` with a DNS subdomain prefix."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part " + _empty_error())
        else:
            errs.extend("prefix part " + msg for msg in is_dns1123_subdomain(prefix))
    else:
        return [
            "a qualified name "
            + _regex_error(_QNAME_ERR, _QNAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]

    if not name:
        errs.append("name part " + _empty_error())
    elif _byte_len(name) > QUALIFIED_NAME_MAX_LENGTH:
        errs.append("name part " + _max_len_error(QUALIFIED_NAME_MAX_LENGTH))
    if not _QNAME_RE.fullmatch(name):
        errs.append(
            "name part " + _regex_error(_QNAME_ERR, _QNAME_FMT, "MyName", "my.name", "123-abc")
        )
    return errs


def is_valid_label_value(value: str) -> list[str]:
    """Label values: empty, or up to 63 alphanumerics with inner ``-_.``."""
    errs: list[str] = []
    if _byte_len(value) > LABEL_VALUE_MAX_LENGTH:
        errs.append(_max_len_error(LABEL_VALUE_MAX_LENGTH))
    if not _LABEL_VALUE_RE.fullmatch(value):
        errs.append(
            _regex_error(_LABEL_VALUE_ERR, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345")
        )
    return errs


def is_valid_port_number(port: int) -> list[str]:
    """A non-zero TCP/UDP port."""
    if 1 <= port <= 65535:
        return []
    return ["must be between 1 and 65535, inclusive"]


def is_valid_port_name(port: str) -> list[str]:
    """IANA_SVC_NAME (RFC 6335), restricted to lower case as Kubernetes does."""
    errs: list[str] = []
    if _byte_len(port) > _PORT_NAME_MAX_LENGTH:
        errs.append(_max_len_error(_PORT_NAME_MAX_LENGTH))
    if not _PORT_NAME_CHARSET_RE.fullmatch(port):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _PORT_NAME_LETTER_RE.search(port):
        errs.append("must contain at least one letter (a-z)")
    if "--" in port:
        errs.append("must not contain consecutive hyphens")
    if port and (port[0] == "-" or port[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def is_ip_address(value: str) -> list[str]:
    """An IPv4 or IPv6 address, parsed as leniently as Kubernetes parses it.

    Kubernetes keeps Go 1.16's parser for compatibility with stored objects,
    so IPv4 octets may carry leading zeros ("010.1.1.1" is 10.1.1.1), while
    zones ("fe80::1%eth0"), CIDRs and surrounding spaces are rejected.
    """
    if _parse_ip_sloppy(value) is None:
        return [_IP_ERR]
    return []


def is_env_var_name(value: str, *, relaxed: bool = False) -> list[str]:
    """A container environment variable name.

    ``relaxed`` applies the RelaxedEnvironmentVariableValidation rule (any
    printable ASCII except '='), which newer API servers use for Pods; the
    default is the classic rule.
    """
    errs: list[str] = []
    if relaxed:
        if not value:
            errs.append("environment variable name " + _empty_error())
        if any(not (0x20 <= ord(ch) <= 0x7E) or ch == "=" for ch in value):
            errs.append(_RELAXED_ENV_VAR_NAME_ERR)
        return errs
    if not _ENV_VAR_NAME_RE.fullmatch(value):
        errs.append(
            _regex_error(
                _ENV_VAR_NAME_ERR, _ENV_VAR_NAME_FMT, "my.env-name", "MY_ENV.NAME", "MyEnvName1"
            )
        )
    errs.extend(_has_chdir_prefix(value))
    return errs


def is_config_map_key(value: str) -> list[str]:
    """A key of a ConfigMap's or Secret's data (it becomes a file name)."""
    errs: list[str] = []
    if _byte_len(value) > DNS1123_SUBDOMAIN_MAX_LENGTH:
        errs.append(_max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH))
    if not _CONFIG_MAP_KEY_RE.fullmatch(value):
        errs.append(
            _regex_error(
                _CONFIG_MAP_KEY_ERR, _CONFIG_MAP_KEY_FMT, "key.name", "KEY_NAME", "key-name"
            )
        )
    errs.extend(_has_chdir_prefix(value))
    return errs


def validate_annotations_size(annotations: Mapping[str, str]) -> list[str]:
    """The 256 KiB limit on the sum of all annotation keys and values.

    The message is what the API server reports under ``metadata.annotations``.
    """
    total = sum(_byte_len(k) + _byte_len(v) for k, v in annotations.items())
    if total > TOTAL_ANNOTATION_SIZE_LIMIT_BYTES:
        return [f"Too long: must have at most {TOTAL_ANNOTATION_SIZE_LIMIT_BYTES} bytes"]
    return []


def _has_chdir_prefix(value: str) -> list[str]:
    if value == ".":
        return ["must not be '.'"]
    if value == "..":
        return ["must not be '..'"]
    if value.startswith(".."):
        return ["must not start with '..'"]
    return []


# The IP parser below follows k8s.io/utils' fork of Go 1.16 net.ParseIP
# (ParseIPSloppy) rather than Python's ipaddress, which rejects IPv4 leading
# zeros and accepts IPv6 scope ids; both would disagree with the API server.

_IPV4_LEN = 4
_IPV6_LEN = 16
_BIG = 0xFFFFFF


def _dtoi(s: str) -> tuple[int, int, bool]:
    n = 0
    i = 0
    while i < len(s) and "0" <= s[i] <= "9":
        n = n * 10 + (ord(s[i]) - ord("0"))
        if n >= _BIG:
            return _BIG, i, False
        i += 1
    if i == 0:
        return 0, 0, False
    return n, i, True


def _xtoi(s: str) -> tuple[int, int, bool]:
    n = 0
    i = 0
    while i < len(s):
        ch = s[i]
        if "0" <= ch <= "9":
            n = n * 16 + (ord(ch) - ord("0"))
        elif "a" <= ch <= "f":
            n = n * 16 + (ord(ch) - ord("a") + 10)
        elif "A" <= ch <= "F":
            n = n * 16 + (ord(ch) - ord("A") + 10)
        else:
            break
        if n >= _BIG:
            return 0, i, False
        i += 1
    if i == 0:
        return 0, 0, False
    return n, i, True


def _parse_ipv4(s: str) -> bytes | None:
    octets = bytearray()
    for i in range(_IPV4_LEN):
        if not s:
            return None
        if i > 0:
            if s[0] != ".":
                return None
            s = s[1:]
        n, c, ok = _dtoi(s)
        if not ok or n > 0xFF:
            return None
        s = s[c:]
        octets.append(n)
    if s:
        return None
    return bytes(octets)


def _parse_ipv6(s: str) -> bytes | None:
    ip = bytearray(_IPV6_LEN)
    ellipsis = -1
    if len(s) >= 2 and s[0] == ":" and s[1] == ":":
        ellipsis = 0
        s = s[2:]
        if not s:
            return bytes(ip)

    i = 0
    while i < _IPV6_LEN:
        n, c, ok = _xtoi(s)
        if not ok or n > 0xFFFF:
            return None

        if c < len(s) and s[c] == ".":
            if ellipsis < 0 and i != _IPV6_LEN - _IPV4_LEN:
                return None
            if i + _IPV4_LEN > _IPV6_LEN:
                return None
            ip4 = _parse_ipv4(s)
            if ip4 is None:
                return None
            ip[i : i + _IPV4_LEN] = ip4
            s = ""
            i += _IPV4_LEN
            break

        ip[i] = n >> 8
        ip[i + 1] = n & 0xFF
        i += 2

        s = s[c:]
        if not s:
            break
        if s[0] != ":" or len(s) == 1:
            return None
        s = s[1:]
        if s[0] == ":":
            if ellipsis >= 0:
                return None
            ellipsis = i
            s = s[1:]
            if not s:
                break

    if s:
        return None

    if i < _IPV6_LEN:
        if ellipsis < 0:
            return None
        gap = _IPV6_LEN - i
        ip[ellipsis + gap : _IPV6_LEN] = ip[ellipsis:i]
        ip[ellipsis : ellipsis + gap] = bytes(gap)
    elif ellipsis >= 0:
        # An ellipsis must stand for at least one group of zeros.
        return None
    return bytes(ip)


def _parse_ip_sloppy(s: str) -> bytes | None:
    for ch in s:
        if ch == ".":
            return _parse_ipv4(s)
        if ch == ":":
            return _parse_ipv6(s)
    return None
