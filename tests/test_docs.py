"""The documentation's references point inside the repository and at things that exist.

- every "docs/model.md section ..." cited in the code, the tests and the docs names a numbered
  heading of docs/model.md (``## 4. Learning``, ``### 7.3 Targeted perturbation``);
- every relative Markdown link in README.md and docs/*.md points to an existing file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import REPO

MODEL_MD = REPO / "docs" / "model.md"

#: a numbered heading of docs/model.md: "## 6. Order parameters", "### 7.3 Targeted perturbation"
HEADING = re.compile(r"^#{2,4}\s+(\d+(?:\.\d+)*)\.?\s", re.MULTILINE)
#: a citation; between "docs/model.md" and "section" a line may break (inside a comment, too)
NUMBER = r"\d+(?:\.\d+)*"
CITATION = re.compile(r"docs/model\.md,?[\s#*]+sections?\s+"
                      r"(" + NUMBER + r"(?:(?:\s*[-,]\s*|\s+and\s+)" + NUMBER + r")*)")
#: [text](target) or ![alt](target)
LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def model_sections() -> set[str]:
    return set(HEADING.findall(MODEL_MD.read_text(encoding="utf-8")))


def cited_sections(text: str) -> list[str]:
    """Every section number a text cites: "sections 1-3, 5" -> 1, 2, 3, 5."""
    out = []
    for group in CITATION.findall(text):
        for part in re.split(r"\s*,\s*|\s+and\s+", group):
            if "-" in part:
                lo, hi = (p.strip() for p in part.split("-"))
                if lo.isdigit() and hi.isdigit():
                    out += [str(i) for i in range(int(lo), int(hi) + 1)]
                else:  # a range of subsections: both ends must exist
                    out += [lo, hi]
            else:
                out.append(part.strip())
    return out


def source_files() -> list[Path]:
    files = [REPO / "README.md"]
    for folder in ("mfphys", "cli", "docs", "tests", "bench"):
        for ext in ("*.py", "*.md", "*.tcss"):
            files += sorted((REPO / folder).rglob(ext))
    return [f for f in files if "__snapshots__" not in f.parts]


def test_citation_parser():
    text = ("see docs/model.md section 4 and docs/model.md sections 1-3, 5; docs/model.md\n"
            "    # section 7.3. Also docs/model.md sections 4 and 7.")
    assert cited_sections(text) == ["4", "1", "2", "3", "5", "7.3", "4", "7"]


def test_model_md_has_the_numbered_sections():
    sections = model_sections()
    assert {str(i) for i in range(1, 8)} <= sections
    assert {"7.1", "7.2", "7.3", "7.4"} <= sections


def test_every_cited_model_section_exists():
    sections = model_sections()
    missing, n = [], 0
    for path in source_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for number in cited_sections(text):
            n += 1
            if number not in sections:
                missing.append(f"{path.relative_to(REPO)}: docs/model.md section {number}")
    assert n > 20, "the citation pattern found (almost) nothing: is the regular expression broken?"
    assert not missing, "cited sections that docs/model.md lacks:\n" + "\n".join(missing)


@pytest.mark.parametrize("page", [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page):
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # an URL or an anchor on the same page
        path = target.split("#", 1)[0]
        if not (page.parent / path).exists():
            broken.append(target)
    assert not broken, f"{page.relative_to(REPO)} links to missing files: {broken}"


def test_every_module_path_the_design_names_exists():
    """docs/design.md's layers and paths name modules that exist (the layout it describes is true)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    text = (root / "docs" / "design.md").read_text()
    paths = set(re.findall(r"`((?:mfphys|cli|tests)/[\w/.-]+?)/?`", text))
    assert paths, "the design names no paths"
    for p in paths:
        if not p.endswith((".py", ".md", ".txt")):
            p = p.split(".", 1)[0]  # `cli/common.make_progress`: the module
        assert (root / p).exists() or (root / f"{p}.py").exists() or "<name>" in p, p
    block = text.split("## Model families", 1)[1].split("```", 1)[0].split("- **", 1)[0]
    layers = [line.split(None, 1)[1].split("(")[0] for line in block.splitlines()
              if line.startswith("    ") and line.split()[0] in ("core", "storage", "registry", "engine")]
    names = [n.strip() for line in layers for n in line.split(",") if n.strip()]
    assert "registry" in names and "store" in names
    for name in names:
        name = name.rstrip("/")
        assert (root / "mfphys" / f"{name}.py").exists() or (root / "mfphys" / name).is_dir(), name
