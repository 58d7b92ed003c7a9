"""The docs/ folder: every citation of it resolves, and nothing cites files outside the repository.

Code, tests and the docs themselves cite `docs/<page>.md`, sections of the
numeric references as `docs/references.md §<heading>` and items of its
numbered list as `docs/references.md item <n>`; each must exist.
"""
from __future__ import annotations

import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, 'docs')
SOURCE_DIRS = ('vision', 'optim', 'experiments', 'tests', 'docs')
# The outside design notes the docs replaced; their names are assembled so
# this file does not cite them itself.
OUTSIDE = ('../' + 'shared', 'DESIGN' + '.md', 'REFERENCE' + '.md')


def _files() -> list[str]:
  out = [os.path.join(ROOT, 'README.md')]
  for top in SOURCE_DIRS:
    for dirpath, _, names in os.walk(os.path.join(ROOT, top)):
      out += [os.path.join(dirpath, n) for n in names if n.endswith(('.py', '.md'))]
  return sorted(out)


def _text(path: str) -> str:
  with open(path, encoding='utf-8') as f:
    return f.read()


def _headings(page: str) -> list[str]:
  return [m.group(1).strip() for m in re.finditer(r'^#+\s+(.*)$', _text(page), re.M)]


def _numbered_items(page: str) -> set[int]:
  return {int(m.group(1)) for m in re.finditer(r'^(\d+)\.\s', _text(page), re.M)}


def test_no_reference_to_files_outside_the_repository():
  offenders = [f'{os.path.relpath(path, ROOT)}: {name}' for path in _files()
               for name in OUTSIDE if name in _text(path)]
  assert not offenders, offenders


def test_cited_docs_pages_exist():
  missing = set()
  for path in _files():
    for page in re.findall(r'docs/([\w-]+\.md)', _text(path)):
      if not os.path.exists(os.path.join(DOCS, page)):
        missing.add(f'{os.path.relpath(path, ROOT)}: docs/{page}')
  assert not missing, sorted(missing)


def test_readme_links_every_docs_page():
  readme = _text(os.path.join(ROOT, 'README.md'))
  pages = sorted(n for n in os.listdir(DOCS) if n.endswith('.md'))
  assert pages
  assert [p for p in pages if f'(docs/{p})' not in readme] == []


def _cites_heading(cited: str, headings: list[str]) -> bool:
  """`cited` is a heading's start, or its name before the authors (' (') or a ' / '."""
  names = {re.split(r' \(| / ', h)[0] for h in headings}
  return cited in names or any(h.startswith(cited) for h in headings)


def test_cited_reference_sections_and_items_exist():
  page = os.path.join(DOCS, 'references.md')
  headings = _headings(page)
  items = _numbered_items(page)
  assert items == set(range(1, max(items) + 1))
  bad = set()
  for path in _files():
    if os.path.samefile(path, __file__):  # its docstring shows the citation forms
      continue
    text = _text(path)
    # `docs/references.md §X` in code and tests, `[references](references.md) §X` in docs.
    for section in re.findall(r'references\.md\)?\s+§\s*([^\n,;.:)`]+)', text):
      if not _cites_heading(section.strip(), headings):
        bad.add(f'{os.path.relpath(path, ROOT)}: §{section.strip()}')
    for item in re.findall(r'references\.md\)?\s+items?\s+(\d+)', text):
      if int(item) not in items:
        bad.add(f'{os.path.relpath(path, ROOT)}: item {item}')
  assert not bad, sorted(bad)


@pytest.mark.parametrize('section', ['ViT', 'Swin', 'PVT v1', 'SegFormer', 'Architectures',
                                     'Numeric details', 'Optimizer semantics',
                                     'Independent test targets'])
def test_references_keeps_the_sections_tests_cite(section):
  assert _cites_heading(section, _headings(os.path.join(DOCS, 'references.md')))
