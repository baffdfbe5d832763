"""``rtbridge caller-lists`` on a real SQLite file: lists and entries through the admin API's
service functions, the CSV import all or nothing with a verdict per line, and an export that
imports back unchanged."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.terminal import ACTOR, Terminal

CSV = """value,expires,note
+1900,,premium rate
+13125550100,2027-01-01T00:00:00Z,"complaint, twice"
anonymous
"""


def test_lists_add_update_list_and_remove(rtb: Terminal) -> None:
    made = rtb("caller-lists", "add", "--id", "complaints", "--kind", "block", "--note", "calls",
               "--auto-block-converted", "86400")  # fmt: skip
    assert made == (0, "block list complaints created (global)\n", "")
    assert rtb("caller-lists", "add", "--id", "vip", "--kind", "allow", "--buyer", "acme")[1] == (
        "allow list vip created (buyer acme)\n")  # fmt: skip
    rows = [line.split() for line in rtb("caller-lists", "list")[1].splitlines()]
    assert rows == [["ID", "KIND", "SCOPE", "ENTRIES", "AUTO_BLOCK_CONVERTED", "NOTE"],
                    ["complaints", "block", "global", "0", "86400", "calls"],
                    ["vip", "allow", "buyer", "acme", "0", "-", "-"]]  # fmt: skip
    status, out, _ = rtb("caller-lists", "update", "complaints", "--campaign", "auto",
                         "--reset", "auto_block_converted")  # fmt: skip
    assert (status, out) == (0, "caller list complaints updated: campaign: None -> 'auto'; "
                                "auto_block_converted: 86400 -> None\n")  # fmt: skip
    assert rtb("caller-lists", "update", "complaints", "--note", "calls")[1] == (
        "caller list complaints: no changes\n")  # fmt: skip
    assert rtb("caller-lists", "add-entry", "vip", "+13125550100")[0] == 0
    assert rtb("caller-lists", "remove", "vip")[:2] == (0, "caller list vip removed, with its "
                                                         "entries\n")  # fmt: skip
    assert "vip" not in rtb("caller-lists", "list")[1]
    actions = [line.split()[1:4] for line in rtb.audit("--resource", "caller-list/vip")]
    assert [ACTOR, "delete", "caller-list/vip"] in actions


def test_bad_list_input_is_refused_clearly(rtb: Terminal) -> None:
    before, trail = rtb("caller-lists", "list")[1], rtb("audit")[1]
    add = ["caller-lists", "add", "--id", "l1"]
    for args, status, message in [
        ([*add, "--kind", "blok"], 2, "kind: must be one of block, allow"),
        ([*add, "--kind", "block", "--campaign", "auto", "--buyer", "acme"], 2,
         "a list is global, a campaign's or a buyer's: not both"),
        ([*add, "--kind", "block", "--campaign", "nope"], 2, "campaign: no campaign 'nope'"),
        ([*add, "--kind", "allow", "--auto-block-converted", "60"], 2,
         "auto_block_converted is for block lists only"),
        ([*add, "--kind", "block", "--auto-block-converted", "soon"], 2,
         "auto_block_converted: must be an integer"),
        (add, 2, "the following arguments are required: --kind"),
        (["caller-lists", "update", "nope", "--note", "x"], 1, "no caller list 'nope'"),
        (["caller-lists", "entries", "nope"], 1, "no caller list 'nope'"),
        (["caller-lists", "add-entry", "nope", "+13125550100"], 1, "no caller list 'nope'"),
    ]:  # fmt: skip
        got, out, err = rtb(*args)
        assert (got, out) == (status, ""), (args, got, out, err)
        assert message in err, (args, err)
    assert rtb("caller-lists", "list")[1] == before and rtb("audit")[1] == trail


def test_entries_one_at_a_time_and_paged(rtb: Terminal) -> None:
    assert rtb("caller-lists", "add", "--id", "l1", "--kind", "block")[0] == 0
    added = rtb("caller-lists", "add-entry", "l1", "+1 (312) 555-0101", "--note", "x",
                "--expires", "2028-01-01T00:00:00+02:00")  # fmt: skip
    assert added == (0, "+13125550101 added in caller list l1\n", "")
    assert rtb("caller-lists", "add-entry", "l1", "+1900")[1] == "+1900* added in caller list l1\n"
    assert rtb("caller-lists", "add-entry", "l1", "+1900", "--note", "premium")[1] == (
        "+1900* updated in caller list l1\n")  # fmt: skip
    bad = rtb("caller-lists", "add-entry", "l1", "12")
    assert bad[0] == 2 and bad[2].startswith("rtbridge: value: not an E.164 number")
    late = rtb("caller-lists", "add-entry", "l1", "anonymous", "--expires", "tomorrow")
    assert late[0] == 2 and "expires: not an ISO 8601 time" in late[2]

    status, out, err = rtb("caller-lists", "entries", "l1", "--limit", "1")
    assert status == 0 and out.splitlines()[1].split()[:3] == [
        "+13125550101", "2027-12-31T22:00:00.000Z", "x"]  # fmt: skip
    assert err == "more: --after '+13125550101'\n"
    rest = rtb("caller-lists", "entries", "l1", "--after", "+13125550101")
    assert [line.split()[0] for line in rest[1].splitlines()[1:]] == ["+1900*"] and rest[2] == ""
    only = rtb("caller-lists", "entries", "l1", "--value", "+19")[1].splitlines()
    assert [line.split()[0] for line in only[1:]] == ["+1900*"]
    assert rtb("caller-lists", "entries", "l1", "--limit", "0")[0] == 2

    assert rtb("caller-lists", "remove-entry", "l1", "+1900")[1] == (
        "+1900* removed from caller list l1\n")  # fmt: skip
    gone = rtb("caller-lists", "remove-entry", "l1", "+1900")
    assert gone[0] == 1 and "no entry '+1900*' in caller list 'l1'" in gone[2]


def test_import_is_all_or_nothing_and_export_imports_back_unchanged(
    rtb: Terminal, tmp_path: Path
) -> None:
    assert rtb("caller-lists", "add", "--id", "l1", "--kind", "block")[0] == 0
    bad = tmp_path / "bad.csv"
    bad.write_text(CSV + "=1+1,,formula\n+1900*\n", encoding="utf-8")
    status, out, err = rtb("caller-lists", "import", "l1", str(bad))
    assert status == 2 and err == "rtbridge: 2 invalid entries; nothing was changed\n"
    lines = out.splitlines()
    assert lines[0] == "line 2  +1900*  valid" and lines[2] == "line 4  anonymous  valid"
    assert lines[3].startswith("line 5  invalid: value: not an E.164 number")
    assert lines[4] == "line 6  invalid: the same entry as 2"
    assert rtb("caller-lists", "entries", "l1")[1].splitlines()[1:] == []

    good = tmp_path / "good.csv"
    good.write_text(CSV, encoding="utf-8")
    status, out, _ = rtb("caller-lists", "import", "l1", str(good))
    assert status == 0 and out.splitlines() == [
        "line 2  +1900*  added", "line 3  +13125550100  added", "line 4  anonymous  added",
        "caller list l1: 3 added, 0 updated, 0 unchanged"]  # fmt: skip
    assert rtb("caller-lists", "add-entry", "l1", "+447700900123", "--note", "=SUM(A1)")[0] == 0
    assert rtb("caller-lists", "add-entry", "l1", "+447700900124", "--note", "'+1 as typed")[0] == 0

    exported = rtb("caller-lists", "export", "l1")[1]
    assert exported.splitlines() == [
        "value,expires,note", "'+13125550100,2027-01-01T00:00:00.000Z,\"complaint, twice\"",
        "'+1900*,,premium rate", "'+447700900123,,'=SUM(A1)", "'+447700900124,,''+1 as typed",
        "anonymous,,"]  # fmt: skip
    copy = tmp_path / "copy.csv"
    assert rtb("caller-lists", "export", "l1", str(copy))[2] == (
        f"caller list l1: 5 entries written to {copy}\n")  # fmt: skip
    assert copy.read_text(encoding="utf-8") == exported
    status, out, _ = rtb("caller-lists", "import", "l1", "-", stdin=exported)
    assert status == 0 and out.splitlines()[-1] == "caller list l1: 0 added, 0 updated, 5 unchanged"
    shown = rtb("caller-lists", "entries", "l1")[1]
    assert "  =SUM(A1)  " in shown and "  '+1 as typed  " in shown  # the guards undone


def test_import_as_a_process_reads_the_file_and_sets_the_exit_status(
    rtb: Terminal, tmp_path: Path
) -> None:
    assert rtb("caller-lists", "add", "--id", "l1", "--kind", "block")[0] == 0
    bad = tmp_path / "bad.csv"
    bad.write_text("+13125550100\nnot a number\n", encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "rtbridge", "--db", rtb.db, "caller-lists",
                          "import", "l1", str(bad)], capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 2 and "nothing was changed" in run.stderr
    assert run.stdout.splitlines()[0] == "line 1  +13125550100  valid"
    missing = rtb("caller-lists", "import", "l1", str(tmp_path / "none.csv"))
    assert missing[0] == 2 and "file: cannot read" in missing[2]
