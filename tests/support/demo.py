"""Names from deploy/demo.toml, and small configuration texts for focused tests."""

KEY_OPEN = "f38240dd-7f65-4e17-a4d7-2e09ccafad0e"  # caller optional, no inbound on the key
KEY_INBOUND = "6b1f0c1e-3c57-4d3b-9f6e-0d2f5a8c7e11"  # caller optional, inbound +18339510260
KEY_STRICT = "0a7d3c55-2b8e-4f61-a9c4-5e3b7d9f1a22"  # caller required, response_root = "rtb"
POOL = ("+18334583385", "+18339510260")
DOMAIN = "sip.rtb.example.com"


def one_buyer_config(*, buyer: str = "", key: str = "", pool: str = '"+18339510260"') -> str:
    """A campaign with one buyer ``b1`` and one key ``KEY_OPEN``; extra TOML lines appended
    to the buyer and key tables."""
    return f"""
[sip]
domain = "{DOMAIN}"

[[campaigns]]
id = "c1"
numbers = [{pool}]

[[campaigns.buyers]]
id = "b1"
destination = "sip:buyer@127.0.0.1:5070"
payout = 12.5
seconds = 60
{buyer}

[[publishers]]
id = "p1"

[[keys]]
key = "{KEY_OPEN}"
publisher = "p1"
campaign = "c1"
allow_missing_caller_number = true
{key}
"""
