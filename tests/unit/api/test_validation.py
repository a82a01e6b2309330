"""Name and label rules, against apimachinery's pkg/util/validation."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from corral.api.validation import (
    is_config_map_key,
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_env_var_name,
    is_ip_address,
    is_qualified_name,
    is_valid_label_value,
    is_valid_port_name,
    is_valid_port_number,
    validate_annotations_size,
)

Check = Callable[[str], list[str]]

DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
    "regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
QNAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
ENV_MSG = (
    "a valid environment variable name must consist of alphabetic characters, digits, '_', "
    "'-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or "
    "'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')"
)
CONFIG_KEY_MSG = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
    "'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
    "'[-._a-zA-Z0-9]+')"
)
TOO_LONG_63 = "must be no more than 63 characters"

# (check, value, expected errors)
CASES: list[tuple[Check, str, list[str]]] = [
    (is_dns1123_label, "a", []),
    (is_dns1123_label, "my-name", []),
    (is_dns1123_label, "123-abc", []),
    (is_dns1123_label, "a" * 63, []),
    (is_dns1123_label, "a" * 64, [TOO_LONG_63]),
    (is_dns1123_label, "a.b", ["must not contain dots"]),
    (is_dns1123_label, "", [DNS1123_LABEL_MSG]),
    (is_dns1123_label, "A", [DNS1123_LABEL_MSG]),
    (is_dns1123_label, "-a", [DNS1123_LABEL_MSG]),
    (is_dns1123_label, "a_b", [DNS1123_LABEL_MSG]),
    (is_dns1123_label, "a\n", [DNS1123_LABEL_MSG]),
    (is_dns1123_subdomain, "example.com", []),
    (is_dns1123_subdomain, "a" * 253, []),
    (is_dns1123_subdomain, "a" * 254, ["must be no more than 253 characters"]),
    (is_dns1123_subdomain, "Example.com", [DNS1123_SUBDOMAIN_MSG]),
    (is_dns1123_subdomain, "a..b", [DNS1123_SUBDOMAIN_MSG]),
    (is_dns1123_subdomain, "a.", [DNS1123_SUBDOMAIN_MSG]),
    (is_dns1035_label, "my-svc", []),
    (is_dns1035_label, "1abc", [DNS1035_MSG]),
    (is_dns1035_label, "abc-", [DNS1035_MSG]),
    (is_qualified_name, "MyName", []),
    (is_qualified_name, "my.name", []),
    (is_qualified_name, "example.com/MyName", []),
    (is_qualified_name, "kubernetes.io/hostname", []),
    (is_qualified_name, "a" * 63, []),
    (is_qualified_name, "a" * 64, ["name part " + TOO_LONG_63]),
    (is_qualified_name, "/name", ["prefix part must be non-empty"]),
    (is_qualified_name, "name/", ["name part must be non-empty", "name part " + QNAME_MSG]),
    (is_qualified_name, "Example.com/name", ["prefix part " + DNS1123_SUBDOMAIN_MSG]),
    (is_qualified_name, "_name", ["name part " + QNAME_MSG]),
    (
        is_qualified_name,
        "a/b/c",
        [
            "a qualified name "
            + QNAME_MSG
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ],
    ),
    (is_valid_label_value, "", []),
    (is_valid_label_value, "MyValue", []),
    (is_valid_label_value, "v" * 63, []),
    (is_valid_label_value, "v" * 64, [TOO_LONG_63]),
    (is_valid_label_value, "v" * 63 + "-", [TOO_LONG_63, LABEL_VALUE_MSG]),
    (is_valid_label_value, "a b", [LABEL_VALUE_MSG]),
    (is_valid_label_value, "-a", [LABEL_VALUE_MSG]),
    # Lengths count UTF-8 bytes, like Go's len().
    (is_valid_label_value, "é" * 32, [TOO_LONG_63, LABEL_VALUE_MSG]),
    (is_valid_port_name, "http", []),
    (is_valid_port_name, "h2c-8080", []),
    (is_valid_port_name, "a" * 15, []),
    (is_valid_port_name, "a" * 16, ["must be no more than 15 characters"]),
    (is_valid_port_name, "123", ["must contain at least one letter (a-z)"]),
    (
        is_valid_port_name,
        "Http",
        ["must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"],
    ),
    (is_valid_port_name, "a--b", ["must not contain consecutive hyphens"]),
    (is_valid_port_name, "-http", ["must not begin or end with a hyphen"]),
    (
        is_valid_port_name,
        "",
        [
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
            "must contain at least one letter (a-z)",
        ],
    ),
    (is_env_var_name, "MY_VAR", []),
    (is_env_var_name, "my.env-name", []),
    (is_env_var_name, "_x1", []),
    (is_env_var_name, "1X", [ENV_MSG]),
    (is_env_var_name, "A B", [ENV_MSG]),
    (is_env_var_name, "..", ["must not be '..'"]),
    (is_env_var_name, "..x", ["must not start with '..'"]),
    (is_config_map_key, "key.name", []),
    (is_config_map_key, "KEY_NAME", []),
    (is_config_map_key, ".dotfile", []),
    (is_config_map_key, "a/b", [CONFIG_KEY_MSG]),
    (is_config_map_key, ".", ["must not be '.'"]),
    (is_config_map_key, "..data", ["must not start with '..'"]),
    (is_config_map_key, "k" * 254, ["must be no more than 253 characters"]),
]


@pytest.mark.parametrize(("check", "value", "expected"), CASES)
def test_rule(check: Check, value: str, expected: list[str]) -> None:
    assert check(value) == expected


# (port, valid)
PORTS = [(0, False), (1, True), (80, True), (65535, True), (65536, False), (-1, False)]


@pytest.mark.parametrize(("port", "valid"), PORTS)
def test_port_number(port: int, valid: bool) -> None:
    expected = [] if valid else ["must be between 1 and 65535, inclusive"]
    assert is_valid_port_number(port) == expected


# (address, valid) - Kubernetes' lenient Go 1.16 parsing
IPS = [
    ("10.9.8.7", True),
    ("0.0.0.0", True),
    ("255.255.255.255", True),
    ("010.001.1.1", True),
    ("2001:db8::ffff", True),
    ("::", True),
    ("::1", True),
    ("1:2:3:4:5:6:7:8", True),
    ("1:2:3:4:5:6:7::", True),
    ("::ffff:1.2.3.4", True),
    ("1:2:3:4:5:6:1.2.3.4", True),
    ("00000001::", True),
    ("", False),
    ("abc", False),
    ("1.2.3", False),
    ("1.2.3.4.5", False),
    ("256.1.1.1", False),
    (" 1.2.3.4", False),
    ("1.2.3.4 ", False),
    ("1.2.3.4/24", False),
    ("1::2::3", False),
    ("1:2:3:4:5:6:7:8::", False),
    ("1:2:3:4:5:6:7:8:9", False),
    ("12345::", False),
    ("fe80::1%eth0", False),
    ("::1.2.3", False),
    ("1:2:3:4:5:1.2.3.4", False),
]


@pytest.mark.parametrize(("address", "valid"), IPS)
def test_ip_address(address: str, valid: bool) -> None:
    expected = [] if valid else ["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]
    assert is_ip_address(address) == expected


RELAXED_MSG = (
    "a valid environment variable name must consist only of printable ASCII characters "
    "other than '='"
)

# (name, expected errors under the relaxed rule)
RELAXED_ENV = [
    ("1X", []),
    ("A B", []),
    ("..", []),
    ("", ["environment variable name must be non-empty"]),
    ("A=B", [RELAXED_MSG]),
    ("TAB\t", [RELAXED_MSG]),
    ("CAFÉ", [RELAXED_MSG]),
]


@pytest.mark.parametrize(("name", "expected"), RELAXED_ENV)
def test_relaxed_env_var_name(name: str, expected: list[str]) -> None:
    assert is_env_var_name(name, relaxed=True) == expected


# (annotations, expected errors)
ANNOTATIONS = [
    ({}, []),
    ({"a": "x" * (256 * 1024 - 1)}, []),
    ({"a": "x" * (256 * 1024)}, ["Too long: must have at most 262144 bytes"]),
    ({"k" * 1024: "v" * (255 * 1024)}, []),
    ({"k" * 1024: "v" * (255 * 1024) + "v"}, ["Too long: must have at most 262144 bytes"]),
    ({"a": "é" * (128 * 1024)}, ["Too long: must have at most 262144 bytes"]),
]


@pytest.mark.parametrize(("annotations", "expected"), ANNOTATIONS)
def test_annotations_size(annotations: dict[str, str], expected: list[str]) -> None:
    assert validate_annotations_size(annotations) == expected
