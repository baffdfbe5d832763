"""What a benchmark concludes, and the exit code that says it.

A benchmark that prints its goals and exits 0 whatever the figures proves nothing: a run
whose calls all failed looks as green as one that met every goal. So each benchmark adds to
one :class:`Verdict` every goal it prints (a figure against its target) and every check of
its workload (calls answered as expected, audio back, no HTTP error, counters equal to their
recount), and ends with :meth:`Verdict.report`: a block naming each of them, PASS or FAIL,
with what was found, and the exit code.

Exit codes: 0 every goal met and every check passed; 1 a goal missed or a check failed (the
block says which); 2 nothing could be judged (a tool missing, a run too short to judge, or
nothing measured).

Goals are flags (``--goal-...``) whose defaults are the issues' goals; a run with other
parameters (fewer calls, shorter trials) is judged against the goals as given, and the block
names every goal flag that differs from its default, so a lowered goal cannot pass unseen.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

PASSED, FAILED, NOT_JUDGED = 0, 1, 2


@dataclass(frozen=True)
class Finding:
    kind: str  # "goal": a figure against its target; "check": the workload did what it should
    name: str
    ok: bool
    found: str


@dataclass
class Verdict:
    bench: str
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def goal(self, name: str, ok: bool, found: str) -> bool:
        self.findings.append(Finding("goal", name, bool(ok), found))
        return bool(ok)

    def check(self, name: str, ok: bool, found: str) -> bool:
        self.findings.append(Finding("check", name, bool(ok), found))
        return bool(ok)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def goals_from(self, parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
        """Note every ``--goal-...`` flag given a value other than its default."""
        for action in parser._actions:
            if action.dest.startswith("goal_"):
                value = getattr(args, action.dest)
                if value != action.default:
                    flag = action.option_strings[0]
                    self.note(f"goal changed: {flag} {value} (default {action.default})")

    def report(self) -> int:
        """Print the verdict block; return the exit code."""
        failed = [f for f in self.findings if not f.ok]
        code = NOT_JUDGED if not self.findings else FAILED if failed else PASSED
        summary = {
            PASSED: f"PASS, {len(self.findings)} goals and checks",
            FAILED: f"FAIL, {len(failed)} of {len(self.findings)} goals and checks failed",
            NOT_JUDGED: "NOT JUDGED, nothing was measured",
        }[code]
        print(f"\nVERDICT {self.bench}: {summary}")
        for f in self.findings:
            print(f"  {'PASS' if f.ok else 'FAIL'}  {f.kind:<5}  {f.name}: {f.found}")
        for text in self.notes:
            print(f"  note: {text}")
        print(f"  exit {code}", flush=True)
        return code


def refuse(bench: str, reason: str) -> int:
    """A run that cannot be judged, said before anything runs: exit 2."""
    print(f"VERDICT {bench}: NOT JUDGED, {reason}", file=sys.stderr)
    print(f"  exit {NOT_JUDGED}", file=sys.stderr)
    return NOT_JUDGED
