"""docs/model-rnn.md: every "docs/model-rnn.md section N" cited in the code, the tests, the
benchmarks and the docs names a numbered heading of the page, and README.md links to it."""

from __future__ import annotations

import re

from tests.helpers import REPO
from tests.test_docs import HEADING, NUMBER, cited_sections, source_files

PAGE = REPO / "docs" / "model-rnn.md"
CITATION = re.compile(r"docs/model-rnn\.md,?[\s#*]+sections?\s+"
                      r"(" + NUMBER + r"(?:(?:\s*[-,]\s*|\s+and\s+)" + NUMBER + r")*)")


def test_every_cited_section_of_the_recurrent_page_exists():
    sections = set(HEADING.findall(PAGE.read_text(encoding="utf-8")))
    assert {str(i) for i in range(1, 9)} <= sections
    cited = {}
    for path in source_files():
        text = path.read_text(encoding="utf-8")
        # cited_sections expands "sections 1-3, 5"; feed it each match rewritten as a model.md citation
        for m in CITATION.finditer(text):
            for s in cited_sections("docs/model.md sections " + m.group(1)):
                cited.setdefault(s, []).append(str(path.relative_to(REPO)))
    assert cited, "no citation of docs/model-rnn.md found"
    missing = {s: files for s, files in cited.items() if s not in sections}
    assert not missing, f"cited sections missing from docs/model-rnn.md: {missing}"


def test_readme_links_the_recurrent_page():
    assert "(docs/model-rnn.md)" in (REPO / "README.md").read_text(encoding="utf-8")
