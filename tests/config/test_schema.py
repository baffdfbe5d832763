"""The configuration file (SPEC §5): every problem found at once, each as ``path: message``."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from rtbridge.config.schema import ConfigError, Document, load_file, parse_document

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "deploy" / "demo.toml"

# SPEC §5, verbatim.
SPEC_EXAMPLE = """
[sip]
domain = "sip.rtb.example.com"

[[trunks]]                      # carriers: trusted by IP, used for PSTN in and out
id = "carrier"
ips = ["198.51.100.10/32"]
uri = "sip:{number}@198.51.100.10:5060"

[[campaigns]]
id = "auto"
numbers = ["+18339510260", "+18334583385"]   # DID pool

[[campaigns.buyers]]
id = "acme"
destination = "sip:queue@buyer.example.net:5060"   # or "+18005550100" (via a trunk)
payout = 90.0
seconds = 120
concurrency = 5
daily_cap = 500
priority = 1
weight = 1
hours = "Mon-Fri 09:00-17:00 America/New_York"    # optional
filters = { caller_state = ["CA", "NY"] }           # optional, on tags

[[publishers]]
id = "pub-1"
ips = ["203.0.113.0/24", "2001:db8::/32"]
credentials = [{ username = "pub1", password = "s3cret-Pass-123" }]

[[keys]]
key = "f38240dd-7f65-4e17-a4d7-2e09ccafad0e"
publisher = "pub-1"
campaign = "auto"
allow_missing_caller_number = true
inbound_number = "+18339510260"   # optional
ttl_seconds = 60
auto_confirm = false
response_root = "rtb"             # optional
"""

KEY = "f38240dd-7f65-4e17-a4d7-2e09ccafad0e"
KEY2 = "6b1f0c1e-3c57-4d3b-9f6e-0d2f5a8c7e11"


def errors_of(text: str, existing: dict[str, set[str]] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_document(tomllib.loads(text), existing=existing)
    errors = info.value.errors
    assert str(info.value) == "\n".join(errors)
    for e in errors:  # every error is "path: message"
        path, sep, message = e.partition(": ")
        assert sep and path and message, e
    return errors


def parse(text: str, existing: dict[str, set[str]] | None = None) -> Document:
    return parse_document(tomllib.loads(text), existing=existing)


def test_spec_example_validates() -> None:
    doc = parse(SPEC_EXAMPLE)
    assert doc.sip_domain == "sip.rtb.example.com"
    assert doc.trunks is not None and [t.id for t in doc.trunks] == ["carrier"]
    assert doc.campaigns is not None and doc.campaigns[0].numbers == (
        "+18339510260",
        "+18334583385",
    )
    (buyer,) = doc.buyers
    assert buyer.id == "acme" and buyer.campaign == "auto"
    assert buyer.payout == 90.0 and buyer.seconds == 120
    assert buyer.concurrency == 5 and buyer.daily_cap == 500
    assert buyer.hours == "Mon-Fri 09:00-17:00 America/New_York"
    assert buyer.filters == {"caller_state": ["CA", "NY"]}
    assert doc.publishers is not None
    (pub,) = doc.publishers
    assert [ip.cidr for ip in pub.ips] == ["203.0.113.0/24", "2001:db8::/32"]
    assert pub.credentials[0].username == "pub1"
    assert doc.keys is not None
    (key,) = doc.keys
    assert key.key == KEY and key.publisher == "pub-1" and key.campaign == "auto"
    assert key.allow_missing_caller_number is True
    assert key.inbound_number == "+18339510260"
    assert key.ttl_seconds == 60 and key.auto_confirm is False
    assert key.response_root == "rtb" and key.paused is False


def test_demo_file_validates() -> None:
    doc = load_file(DEMO)
    assert doc.keys is not None and len(doc.keys) == 3


def test_defaults() -> None:
    doc = parse(f'''
[[campaigns]]
id = "c"
[[campaigns.buyers]]
id = "b"
destination = "sip:q@example.net"
payout = 1
seconds = 0
[[publishers]]
id = "p"
[[keys]]
key = "{KEY}"
publisher = "p"
campaign = "c"
''')
    (b,) = doc.buyers
    assert (b.priority, b.weight, b.concurrency, b.daily_cap, b.hours, b.filters, b.trunk) == (
        1,
        1,
        None,
        None,
        None,
        {},
        None,
    )
    assert isinstance(b.payout, float)
    assert doc.keys is not None
    k = doc.keys[0]
    assert (
        k.allow_missing_caller_number,
        k.inbound_number,
        k.ttl_seconds,
        k.auto_confirm,
        k.response_root,
        k.paused,
    ) == (False, None, 60, False, None, False)
    assert doc.sip_domain is None and doc.trunks is None  # left out → untouched


def test_empty_file_leaves_everything_out() -> None:
    doc = parse("")
    assert doc == Document()


def test_present_but_empty_sections_are_empty_not_none() -> None:
    doc = parse("trunks = []\ncampaigns = []\npublishers = []\nkeys = []\n")
    assert doc.trunks == () and doc.campaigns == () and doc.publishers == () and doc.keys == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[sip]\ndomain = "a.b"\nport = 5060\n', "sip.port: unknown field"),
        (
            '[[trunks]]\nid = "t"\nuri = "sip:{number}@h"\ncolor = 1\n',
            "trunks[0].color: unknown field",
        ),
        ('[[campaigns]]\nid = "c"\ncolor = 1\n', "campaigns[0].color: unknown field"),
        (
            '[[campaigns]]\nid = "c"\n[[campaigns.buyers]]\nid = "b"\ndestination = "sip:q@h"\n'
            "payout = 1\nseconds = 1\ncolor = 1\n",
            "campaigns[0].buyers[0].color: unknown field",
        ),
        ('[[publishers]]\nid = "p"\ncolor = 1\n', "publishers[0].color: unknown field"),
        (
            '[[keys]]\nkey = "' + KEY + '"\npublisher = "p"\ncampaign = "c"\ncolor = 1\n',
            "keys[0].color: unknown field",
        ),
        (
            "[admins]\nx = 1\n",
            "admins: unknown section (expected one of sip, recordings, trunks, campaigns, "
            "publishers, keys, caller_lists)",
        ),
    ],
)
def test_unknown_fields(text: str, expected: str) -> None:
    existing = {"publishers": {"p"}, "campaigns": {"c"}}
    assert expected in errors_of(text, existing)


def test_unknown_field_inside_inline_tables() -> None:
    errors = errors_of("""
[[publishers]]
id = "p"
ips = [{ cidr = "10.0.0.0/8", colour = "x" }]
credentials = [{ username = "u", password = "s3cret-Pass-123", realm = "x" }]
""")
    assert "publishers[0].ips[0].colour: unknown field" in errors
    assert "publishers[0].credentials[0].realm: unknown field" in errors


def test_required_fields() -> None:
    errors = errors_of("""
[sip]
[[trunks]]
ips = []
[[campaigns]]
[[campaigns.buyers]]
[[publishers]]
[[keys]]
""")
    assert sorted(errors) == sorted(
        [
            "sip.domain: required",
            "trunks[0].id: required",
            "trunks[0].uri: required",
            "campaigns[0].id: required",
            "campaigns[0].buyers[0].id: required",
            "campaigns[0].buyers[0].destination: required",
            "campaigns[0].buyers[0].payout: required",
            "campaigns[0].buyers[0].seconds: required",
            "publishers[0].id: required",
            "keys[0].key: required",
            "keys[0].publisher: required",
            "keys[0].campaign: required",
        ]
    )


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("payout", '"90"', "campaigns[0].buyers[0].payout: must be a number"),
        ("payout", "-1.0", "campaigns[0].buyers[0].payout: must be >= 0"),
        ("seconds", "1.5", "campaigns[0].buyers[0].seconds: must be an integer"),
        ("seconds", "86401", "campaigns[0].buyers[0].seconds: must be between 0 and 86400"),
        ("concurrency", "0", "campaigns[0].buyers[0].concurrency: must be >= 1"),
        ("daily_cap", "true", "campaigns[0].buyers[0].daily_cap: must be an integer"),
        ("priority", "-1", "campaigns[0].buyers[0].priority: must be >= 0"),
        ("weight", "0", "campaigns[0].buyers[0].weight: must be >= 1"),
        (
            "hours",
            '"Mon-Fri 09:00-17:00 Mars/Base"',
            "campaigns[0].buyers[0].hours: unknown time zone 'Mars/Base'",
        ),
        ("hours", '"Mon 24:00-25:00"', "campaigns[0].buyers[0].hours: bad time '24:00'"),
        (
            "srtp",
            '"mandatory"',
            'campaigns[0].buyers[0].srtp: must be "off", "optional" or "required"',
        ),
        (
            "filters",
            '"CA"',
            "campaigns[0].buyers[0].filters: must be a table such as "
            '{ caller_state = ["CA", "NY"] }',
        ),
        (
            "filters",
            "{ caller_state = [] }",
            "campaigns[0].buyers[0].filters: caller_state: must be a non-empty array of strings",
        ),
        (
            "filters",
            "{ caller_state = [1] }",
            "campaigns[0].buyers[0].filters: caller_state: must be a non-empty array of strings",
        ),
    ],
)
def test_buyer_type_errors(field: str, value: str, expected: str) -> None:
    base = {"id": '"b"', "destination": '"sip:q@h"', "payout": "1", "seconds": "1"}
    base[field] = value
    body = "\n".join(f"{k} = {v}" for k, v in base.items())
    assert errors_of(f'[[campaigns]]\nid = "c"\n[[campaigns.buyers]]\n{body}\n') == [expected]


FAILOVER_FILE = """
[[campaigns]]
id = "auto"
failover = ["busy", "no-answer"]
max_attempts = 5
[[campaigns.buyers]]
id = "acme"
destination = "sip:q@h"
payout = 1
seconds = 1
ring_timeout = 20
connect_timeout = 1.5
[[campaigns.buyers]]
id = "zen"
destination = "sip:z@h"
payout = 1
seconds = 1
[[campaigns]]
id = "quiet"
failover = []
"""


def test_failover_settings() -> None:
    """Given values are read (the kinds in their one order); left out, the defaults: every
    kind, 3 buyers, and the timeouts left to the agent (None)."""
    doc = parse(FAILOVER_FILE)
    assert doc.campaigns is not None
    auto, quiet = doc.campaigns
    assert (auto.failover, auto.max_attempts) == (("no-answer", "busy"), 5)
    assert (quiet.failover, quiet.max_attempts) == ((), 3)
    acme, zen = doc.buyers
    assert (acme.ring_timeout, acme.connect_timeout) == (20.0, 1.5)
    assert (zen.ring_timeout, zen.connect_timeout) == (None, None)
    (plain,) = parse('[[campaigns]]\nid = "c"\n').campaigns or ()
    assert plain.failover == ("no-answer", "busy", "rejected", "unreachable")
    assert plain.max_attempts == 3


ALLOWED_KINDS = "(allowed: no-answer, busy, rejected, unreachable)"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('failover = ["busy", "voicemail"]',
         f"campaigns[0].failover: 'voicemail' is not a failure kind {ALLOWED_KINDS}"),
        ('failover = ["busy", "busy"]', "campaigns[0].failover: 'busy' is listed twice"),
        ('failover = "busy"', "campaigns[0].failover: must be an array of failure kinds "
         "(no-answer, busy, rejected, unreachable), or [] for no failover"),
        ("failover = false", "campaigns[0].failover: must be an array of failure kinds "
         "(no-answer, busy, rejected, unreachable), or [] for no failover"),
        ("max_attempts = 0", "campaigns[0].max_attempts: must be between 1 and 10"),
        ("max_attempts = 11", "campaigns[0].max_attempts: must be between 1 and 10"),
        ("max_attempts = 2.5", "campaigns[0].max_attempts: must be an integer"),
        ('max_attempts = "3"', "campaigns[0].max_attempts: must be an integer"),
    ],
)  # fmt: skip
def test_campaign_failover_errors(line: str, expected: str) -> None:
    assert errors_of(f'[[campaigns]]\nid = "c"\n{line}\n') == [expected]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ("ring_timeout = 0", "ring_timeout: must be more than 0 and at most 600 seconds"),
        ("ring_timeout = -5", "ring_timeout: must be more than 0 and at most 600 seconds"),
        ("ring_timeout = 601", "ring_timeout: must be more than 0 and at most 600 seconds"),
        ('ring_timeout = "20"', "ring_timeout: must be a number of seconds"),
        ("ring_timeout = inf", "ring_timeout: must be more than 0 and at most 600 seconds"),
        ("connect_timeout = 0", "connect_timeout: must be more than 0 and at most 60 seconds"),
        ("connect_timeout = 61", "connect_timeout: must be more than 0 and at most 60 seconds"),
        ("connect_timeout = true", "connect_timeout: must be a number of seconds"),
        ("ring_timeout = 20\nconnect_timeout = 20",
         "connect_timeout: 20 s is not less than ring_timeout (20 s): the connect timeout must "
         "be shorter than the ring timeout"),
        ("ring_timeout = 2.5\nconnect_timeout = 30",
         "connect_timeout: 30 s is not less than ring_timeout (2.5 s): the connect timeout "
         "must be shorter than the ring timeout"),
    ],
)  # fmt: skip
def test_buyer_timeout_errors(lines: str, expected: str) -> None:
    text = (f'[[campaigns]]\nid = "c"\n[[campaigns.buyers]]\nid = "b"\n'
            f'destination = "sip:q@h"\npayout = 1\nseconds = 1\n{lines}\n')  # fmt: skip
    assert errors_of(text) == [f"campaigns[0].buyers[0].{expected}"]


def test_connect_timeout_alone_is_not_compared() -> None:
    """Without ring_timeout the agent's own ring timeout applies, unknown to the file."""
    doc = parse('[[campaigns]]\nid = "c"\n[[campaigns.buyers]]\nid = "b"\n'
                'destination = "sip:q@h"\npayout = 1\nseconds = 1\nconnect_timeout = 45\n')  # fmt: skip
    assert doc.buyers[0].connect_timeout == 45.0


def test_filter_single_string_is_a_list() -> None:
    doc = parse(
        '[[campaigns]]\nid = "c"\n[[campaigns.buyers]]\nid = "b"\n'
        'destination = "sip:q@h"\npayout = 1\nseconds = 1\nfilters = { s = "CA" }\n'
    )
    assert doc.buyers[0].filters == {"s": ["CA"]}


def test_key_field_errors() -> None:
    errors = errors_of(
        """
[[keys]]
key = "short"
publisher = "p"
campaign = "c"
allow_missing_caller_number = "yes"
inbound_number = "8005551234"
ttl_seconds = 0
auto_confirm = 1
response_root = "data"
paused = "no"
""",
        {"publishers": {"p"}, "campaigns": {"c"}},
    )
    assert sorted(errors) == sorted(
        [
            "keys[0].key: too short (at least 16 characters; it is a secret)",
            "keys[0].allow_missing_caller_number: must be true or false",
            "keys[0].inbound_number: not an E.164 number (e.g. +18005551234)",
            "keys[0].ttl_seconds: must be between 1 and 86400",
            "keys[0].auto_confirm: must be true or false",
            'keys[0].response_root: must be "rtb" or absent',
            "keys[0].paused: must be true or false",
        ]
    )


def test_trunk_field_errors() -> None:
    errors = errors_of("""
[[trunks]]
id = "bad id"
ips = ["198.51.100.10/24"]
uri = "sip:198.51.100.10"
password = "x"
""")
    assert (
        "trunks[0].id: must be 1-64 characters of A-Z a-z 0-9 _ . - (starting alphanumeric)"
    ) in errors
    assert any(e.startswith("trunks[0].ips[0]: not a CIDR network") for e in errors)
    assert "trunks[0].uri: must be a sip: URI template containing {number}" in errors
    assert any(
        e.startswith("trunks[0].password: username and realm are required with password")
        for e in errors
    )


def test_publisher_field_errors() -> None:
    errors = errors_of("""
[sip]
domain = "not a domain"
[[publishers]]
id = "p"
name = ""
ips = ["10.0.0.1/8", { cidr = "10.0.0.0/8", expires_at = "soon" }]
credentials = [{ username = "u u", password = "s3cret-Pass-123" }]
""")
    assert "sip.domain: not a host name (e.g. sip.rtb.example.com)" in errors
    assert "publishers[0].name: must be a non-empty string of at most 256 characters" in errors
    assert any(e.startswith("publishers[0].ips[0]: not a CIDR network") for e in errors)
    assert any(e.startswith("publishers[0].credentials[0].username: must be 1-128") for e in errors)


def test_password_policy_message() -> None:
    errors = errors_of("""
[[publishers]]
id = "p"
credentials = [{ username = "u", password = "password" }]
""")
    assert errors == [
        "publishers[0].credentials[0].password: too weak: use at least 12 characters mixing "
        "three of lower case, upper case, digits and symbols"
    ]


def test_section_shapes() -> None:
    errors = errors_of('sip = "x"\ntrunks = "t"\ncampaigns = [1]\nkeys = {}\n')
    assert "sip: must be a table" in errors
    assert "trunks: must be an array" in errors
    assert "campaigns[0]: must be a table" in errors
    assert "keys: must be an array" in errors
    assert not any("required" in e for e in errors)  # no noise for a non-table entry


def test_duplicates() -> None:
    errors = errors_of(f'''
[[trunks]]
id = "t"
uri = "sip:{{number}}@h"
[[trunks]]
id = "t"
uri = "sip:{{number}}@h2"

[[campaigns]]
id = "c"
numbers = ["+18339510260", "+18339510260"]
[[campaigns.buyers]]
id = "b"
destination = "sip:q@h"
payout = 1
seconds = 1
[[campaigns]]
id = "c"
numbers = ["+18334583385"]
[[campaigns]]
id = "d"
numbers = ["+18334583385"]
[[campaigns.buyers]]
id = "b"
destination = "sip:q@h"
payout = 1
seconds = 1

[[publishers]]
id = "p"
ips = ["10.0.0.0/8", "10.0.0.0/8"]
credentials = [{{ username = "u", password = "s3cret-Pass-123" }}]
[[publishers]]
id = "p"
credentials = [{{ username = "u", password = "s3cret-Pass-123" }}]

[[keys]]
key = "{KEY}"
publisher = "p"
campaign = "c"
[[keys]]
key = "{KEY}"
publisher = "p"
campaign = "d"
''')
    assert sorted(errors) == sorted(
        [
            "trunks[1].id: duplicate trunk id 't' (also trunks[0].id)",
            "campaigns[1].id: duplicate campaign id 'c' (also campaigns[0].id)",
            "campaigns[0].numbers: duplicate DID '+18339510260' (also campaigns[0].numbers)",
            "campaigns[2].numbers: duplicate DID '+18334583385' (also campaigns[1].numbers)",
            "campaigns[2].buyers[0].id: duplicate buyer id 'b' (also campaigns[0].buyers[0].id)",
            "publishers[1].id: duplicate publisher id 'p' (also publishers[0].id)",
            "publishers[1].credentials: duplicate SIP username 'u' (also publishers[0].credentials)",
            "publishers[0].ips: duplicate CIDR '10.0.0.0/8' (also publishers[0].ips)",
            f"keys[1].key: duplicate key {KEY!r} (also keys[0].key)",
        ]
    )


def test_cidr_duplicates_are_compared_canonically() -> None:
    errors = errors_of('[[publishers]]\nid = "a"\nips = ["10.0.0.1", "10.0.0.1/32"]\n')
    assert errors == ["publishers[0].ips: duplicate CIDR '10.0.0.1/32' (also publishers[0].ips)"]


def test_unknown_references() -> None:
    errors = errors_of(f'''
[[trunks]]
id = "t"
uri = "sip:{{number}}@h"
[[campaigns]]
id = "c"
[[campaigns.buyers]]
id = "b"
destination = "+18005550100"
trunk = "nope"
payout = 1
seconds = 1
[[publishers]]
id = "p"
[[keys]]
key = "{KEY}"
publisher = "ghost"
campaign = "void"
''')
    assert sorted(errors) == sorted(
        [
            "campaigns[0].buyers[0].trunk: no trunk 'nope'",
            "keys[0].publisher: no publisher 'ghost'",
            "keys[0].campaign: no campaign 'void'",
        ]
    )


def test_references_to_omitted_sections_use_existing_ids() -> None:
    text = f'[[keys]]\nkey = "{KEY}"\npublisher = "p"\ncampaign = "c"\n'
    assert sorted(errors_of(text)) == [
        "keys[0].campaign: no campaign 'c'",
        "keys[0].publisher: no publisher 'p'",
    ]
    doc = parse(text, {"publishers": {"p"}, "campaigns": {"c"}})
    assert doc.keys is not None and doc.keys[0].publisher == "p"
    # A section present in the file replaces what exists: references must be inside it.
    errors = errors_of(
        text + '[[publishers]]\nid = "other"\n', {"publishers": {"p"}, "campaigns": {"c"}}
    )
    assert errors == ["keys[0].publisher: no publisher 'p'"]


NUMBER_BUYER = """
[[campaigns]]
id = "c"
[[campaigns.buyers]]
id = "b"
destination = "+18005550100"
payout = 1
seconds = 1
"""


def test_number_destination_needs_a_trunk() -> None:
    assert errors_of(NUMBER_BUYER) == [
        "campaigns[0].buyers[0].destination: a phone number needs a trunk; add [[trunks]]"
    ]
    assert errors_of("trunks = []\n" + NUMBER_BUYER) == [
        "campaigns[0].buyers[0].destination: a phone number needs a trunk; add [[trunks]]"
    ]
    parse(NUMBER_BUYER, {"trunks": {"carrier"}})  # an existing trunk will do
    parse('[[trunks]]\nid = "t"\nuri = "sip:{number}@h"\n' + NUMBER_BUYER)


def test_many_errors_reported_together() -> None:
    errors = errors_of(f'''
[sip]
domain = "bad domain"
[[campaigns]]
id = "c"
numbers = ["12345"]
[[campaigns.buyers]]
id = "b"
destination = "http://buyer"
payout = "lots"
seconds = 1
[[publishers]]
id = "p"
credentials = [{{ username = "u", password = "weak" }}]
[[keys]]
key = "{KEY}"
publisher = "p"
campaign = "missing"
ttl_seconds = -5
''')
    paths = {e.partition(": ")[0] for e in errors}
    assert paths == {
        "sip.domain",
        "campaigns[0].numbers[0]",
        "campaigns[0].buyers[0].destination",
        "campaigns[0].buyers[0].payout",
        "publishers[0].credentials[0].password",
        "keys[0].ttl_seconds",
        "keys[0].campaign",
    }


def test_bad_toml(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[sip\ndomain = "x"\n')
    with pytest.raises(ConfigError) as info:
        load_file(path)
    (error,) = info.value.errors
    assert error.startswith(f"{path}: not valid TOML (")


def test_toml_nested_too_deeply_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError) as info:
        load_file(path)
    assert info.value.errors == [f"{path}: nested too deeply to be a configuration file"]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as info:
        load_file(path)
    assert info.value.errors == [f"{path}: cannot read (No such file or directory)"]


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[sip]\ndomain = "caf\xe9"\n')
    with pytest.raises(ConfigError) as info:
        load_file(path)
    assert info.value.errors == [f"{path}: not UTF-8 text"]


def test_load_file_validates(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[sip]\ndomain = "SIP.Example.com"\n')
    assert load_file(path).sip_domain == "sip.example.com"
    path.write_text("[sip]\n")
    with pytest.raises(ConfigError) as info:
        load_file(path)
    assert info.value.errors == ["sip.domain: required"]


def test_ip_entries_with_note_and_expiry() -> None:
    doc = parse("""
[[publishers]]
id = "p"
ips = ["203.0.113.7",
       { cidr = "2001:db8::/32", note = "office", expires_at = 2030-01-01T00:00:00+02:00 }]
""")
    assert doc.publishers is not None
    ips: Any = doc.publishers[0].ips
    assert ips[0].cidr == "203.0.113.7/32" and ips[0].note is None
    assert ips[1].note == "office"
    assert ips[1].expires_at.isoformat() == "2029-12-31T22:00:00+00:00"


def test_one_cidr_on_two_publishers_is_refused() -> None:
    errors = errors_of(
        '[[publishers]]\nid = "a"\nips = ["203.0.113.0/24"]\n'
        '[[publishers]]\nid = "b"\nips = ["203.0.113.0/24"]\n'
    )
    assert errors == ["publishers[1].ips: duplicate CIDR '203.0.113.0/24' (also publishers[0].ips)"]


def test_filter_tag_names_follow_the_ping_tag_rule() -> None:
    text = """
[[campaigns]]
id = "c"
[[campaigns.buyers]]
id = "b"
destination = "sip:b@example.net"
payout = 1.0
seconds = 1
filters = { "caller state" = ["CA"] }
"""
    assert errors_of(text) == [
        "campaigns[0].buyers[0].filters: 'caller state': tag names are 1-64 of A-Z a-z 0-9 _ . -"
    ]


def test_nested_list_items_have_their_own_path() -> None:
    """pydantic's loc ``('campaigns', 0, 'buyers', 1, 'payout')`` is written as a path, down to
    an item inside an inline array, one error per problem."""
    errors = errors_of(f'''
[[campaigns]]
id = "c"
numbers = ["+18339510260", "12345"]
[[campaigns.buyers]]
id = "ok"
destination = "sip:q@h"
payout = 1
seconds = 1
[[campaigns.buyers]]
id = "b"
destination = "sip:q@h"
payout = -1
seconds = "60"
[[publishers]]
id = "p"
ips = ["10.0.0.0/8", {{ cidr = "10.1.0.0/16", expires_at = "soon" }}, 7]
credentials = [{{ username = "u", password = "s3cret-Pass-123" }}, {{ username = "v" }}]
[[keys]]
key = "{KEY}"
publisher = "p"
campaign = "c"
[[keys]]
key = "{KEY2}"
publisher = "p"
campaign = "c"
[[keys]]
key = "{KEY2}x"
publisher = "p"
campaign = "c"
inbound_number = "8005551234"
''')
    assert sorted(errors) == sorted(
        [
            "campaigns[0].numbers[1]: not an E.164 number (e.g. +18005551234)",
            "campaigns[0].buyers[1].payout: must be >= 0",
            "campaigns[0].buyers[1].seconds: must be an integer",
            "publishers[0].ips[1].expires_at: not an ISO 8601 time (e.g. 2026-12-31T23:59:00Z)",
            'publishers[0].ips[2]: must be a CIDR string or { cidr = "...", note = "...", '
            "expires_at = ..., allow_overlap = true }",
            "publishers[0].credentials[1].password: required",
            "keys[2].inbound_number: not an E.164 number (e.g. +18005551234)",
        ]
    )


def test_one_bad_entry_does_not_hide_duplicates_or_break_references() -> None:
    """Entries that validate alone are still checked against each other, and a reference to
    an entry with a field error is not reported as a missing one."""
    errors = errors_of(f'''
[[campaigns]]
id = "c"
numbers = ["bad"]
[[publishers]]
id = "p"
[[publishers]]
id = "p"
[[keys]]
key = "{KEY}"
publisher = "p"
campaign = "c"
''')
    assert sorted(errors) == [
        "campaigns[0].numbers[0]: not an E.164 number (e.g. +18005551234)",
        "publishers[1].id: duplicate publisher id 'p' (also publishers[0].id)",
    ]


NOTICES = """
[[campaigns]]
id = "c"
record = true
record_announcement = "sounds/notice.wav"
[[campaigns.buyers]]
id = "own"
destination = "sip:q@h"
payout = 1
seconds = 1
record_announcement = "../shared/../elsewhere/own.wav"
[[campaigns.buyers]]
id = "absolute"
destination = "sip:q@h"
payout = 1
seconds = 1
record_announcement = "/srv/sounds/notice.wav"
[[campaigns.buyers]]
id = "campaigns"
destination = "sip:q@h"
payout = 1
seconds = 1

[recordings]
directory = "recordings"
retention_days = 30
format = "wav"
"""


def test_relative_paths_are_the_files_directorys(tmp_path: Path) -> None:
    """A notice or the recordings directory written relative is the file's directory's (an
    absolute one stays as written); the document holds them absolute, as apply stores them."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "rtbridge.toml").write_text(NOTICES)
    doc = load_file(site / "rtbridge.toml")
    assert doc.campaigns is not None
    (campaign,) = doc.campaigns
    assert campaign.record_announcement == str(site / "sounds" / "notice.wav")
    assert [b.record_announcement for b in campaign.buyers] == [
        str(tmp_path / "elsewhere" / "own.wav"), "/srv/sounds/notice.wav", None]  # fmt: skip
    assert [b.record_announcement for b in doc.buyers] == [
        b.record_announcement for b in campaign.buyers]  # fmt: skip
    assert doc.recordings is not None
    assert (doc.recordings.directory, doc.recordings.retention_days, doc.recordings.format) == (
        str(site / "recordings"), 30, "wav")  # fmt: skip


def test_a_document_without_a_file_resolves_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    doc = parse(NOTICES)
    assert doc.campaigns is not None and doc.recordings is not None
    assert doc.campaigns[0].record_announcement == str(tmp_path / "sounds" / "notice.wav")
    assert doc.recordings.directory == str(tmp_path / "recordings")
    based = parse_document(tomllib.loads(NOTICES), base=Path("/etc/rtbridge"))
    assert based.recordings is not None and based.recordings.directory == "/etc/rtbridge/recordings"


def test_recordings_section_rules() -> None:
    assert parse("[recordings]\n").recordings is not None  # present, every key its default
    assert parse('[sip]\ndomain = "h"\n').recordings is None  # left out
    errors = errors_of(
        '[recordings]\ndirectory = ""\nretention_days = 0\nformat = "mp3"\ncolor = 1\n'
    )
    assert sorted(errors) == [
        "recordings.color: unknown field",
        "recordings.directory: must be a non-empty string of at most 1024 characters",
        'recordings.format: only "wav" (stereo PCM16: publisher left, buyer right) is supported',
        "recordings.retention_days: must be between 1 and 36500",
    ]
    assert errors_of('[recordings]\nretention_days = "90"\n') == [
        "recordings.retention_days: must be an integer"]  # fmt: skip
    assert errors_of("recordings = 1\n") == ["recordings: must be a table"]


def test_a_notice_path_must_be_a_path() -> None:
    errors = errors_of(
        '[[campaigns]]\nid = "c"\nrecord_announcement = 1\n[[campaigns.buyers]]\nid = "b"\n'
        'destination = "sip:q@h"\npayout = 1\nseconds = 1\nrecord_announcement = " x.wav"\n'
    )
    assert sorted(errors) == [
        "campaigns[0].buyers[0].record_announcement: must be a path without NUL or surrounding "
        "spaces",
        "campaigns[0].record_announcement: must be a non-empty string of at most 1024 characters",
    ]
    deep = "a/" * 400 + "notice.wav"  # 810 characters as written, 1,116 once absolute
    with pytest.raises(ConfigError) as info:
        parse_document(tomllib.loads(f'[[campaigns]]\nid = "c"\nrecord_announcement = "{deep}"\n'),
                       base=Path("/" + "b" * 304))  # fmt: skip
    assert info.value.errors == [
        "campaigns[0].record_announcement: 1116 characters once made absolute; at most 1024"]  # fmt: skip
