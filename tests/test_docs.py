"""The README and docs/ stay inside the repository and agree with its tree: every link leads
to a file that exists (and to a heading that exists, when it names one), no link leaves the
repository, and every repository path the text names in backticks is there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Paths named before their file lands, each with where it comes from. Keep this short: a
# name here is a promise.
ANNOUNCED: dict[str, str] = {}

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]+`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *#*$", re.M)
# A backticked repository path: a top-level folder of the repository, then a path.
TOP = "|".join(
    re.escape(p.name) for p in sorted(ROOT.iterdir()) if p.is_dir() and p.name in {
        "src", "tests", "deploy", "scripts", "sip_config", "pjproject", "bench", "docs", ".ci",
    }
)  # fmt: skip
REPO_PATH = re.compile(rf"^(?:{TOP})/[\w./@-]*$")


def _prose(text: str) -> str:
    """The text without fenced blocks or code spans: where links and headings live."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def _anchor(heading: str) -> str:
    """GitHub's id for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text())):
        slug = _anchor(heading)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def _links(path: Path) -> list[str]:
    return LINK.findall(_prose(path.read_text()))


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def link_problems(doc: Path, root: Path = ROOT) -> list[str]:
    """Links that leave the repository (``root``) or lead nowhere, each with why."""
    problems = []
    for target in _links(doc):
        file, _, anchor = target.partition("#")
        if re.match(r"^[a-z][a-z0-9+.-]*:", file) or file.startswith(("/", "~")):
            problems.append(f"{target}: leaves the repository")
            continue
        resolved = (doc.parent / file).resolve() if file else doc
        if not resolved.is_relative_to(root):
            problems.append(f"{target}: outside the repository")
        elif not resolved.exists():
            problems.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            problems.append(f"{target}: no heading #{anchor}")
    return problems


def outside_references(doc: Path) -> list[str]:
    """Mentions of the contract that is not in the repository: a sibling folder, its file,
    its section numbers."""
    return re.findall(r"\.\./shared|SPEC\.md|SPEC §", doc.read_text())


def missing_paths(doc: Path) -> list[str]:
    """Repository paths named in backticks that the tree does not hold."""
    named = {span.strip("`") for span in CODE_SPAN.findall(doc.read_text())}
    paths = sorted(p for p in named if REPO_PATH.match(p))
    return [p for p in paths if not (ROOT / p).exists() and p not in ANNOUNCED]


@pytest.mark.parametrize("doc", DOCS, ids=_name)
def test_every_link_stays_in_the_repository_and_finds_its_target(doc: Path) -> None:
    assert link_problems(doc) == []


@pytest.mark.parametrize("doc", DOCS, ids=_name)
def test_no_reference_to_text_outside_the_repository(doc: Path) -> None:
    """The contract behind rtbridge is not in the repository: the docs say what it does in
    their own words."""
    assert outside_references(doc) == []


@pytest.mark.parametrize("doc", DOCS, ids=_name)
def test_every_repository_path_named_exists(doc: Path) -> None:
    assert missing_paths(doc) == []


def test_every_doc_is_reached_from_the_readme() -> None:
    """docs/ is a map the README opens: no page only a search finds."""
    reached = {(ROOT / t.partition("#")[0]).resolve() for t in _links(ROOT / "README.md")}
    orphans = [_name(d) for d in DOCS[1:] if d.resolve() not in reached]
    assert orphans == []


def test_the_readme_stays_short() -> None:
    """A newcomer's page: what it is, two commands, a first ping and call, the map."""
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300


def test_the_checks_can_fail(tmp_path: Path) -> None:
    """Each rule refuses what it is for, on a page written to break them all (links inside
    a fenced block are code, not links)."""
    (tmp_path / "real.md").write_text("# Real\n")
    page = tmp_path / "bad.md"
    page.write_text(
        "# Title\n\nSee [the spec](../shared/SPEC.md) (SPEC §4), [a site](https://example.com/),\n"
        "[a file](/etc/passwd), [nowhere](missing.md), [a heading](#no-such-heading),\n"
        "[another's](real.md#nope), [ok](#title) and [fine](real.md#real);\n"
        "`src/rtbridge/no_such_module.py` and `src/rtbridge/settings.py`.\n"
        "```\n[in a fence](missing-too.md)\n```\n"
    )
    assert link_problems(page, root=tmp_path) == [
        "../shared/SPEC.md: outside the repository",
        "https://example.com/: leaves the repository",
        "/etc/passwd: leaves the repository",
        "missing.md: no such file",
        "#no-such-heading: no heading #no-such-heading",
        "real.md#nope: no heading #nope",
    ]
    assert outside_references(page) == ["../shared", "SPEC.md", "SPEC §"]
    assert missing_paths(page) == ["src/rtbridge/no_such_module.py"]
    assert _anchor("Secrets at rest: the site key") == "secrets-at-rest-the-site-key"
    assert _anchor("Why was this call refused?") == "why-was-this-call-refused"
