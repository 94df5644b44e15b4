"""Design notes: every citation names a note that exists (in the file it says, if it says one),
and each note is defined once.

A note is a block that explains a decision once, where the code that needs it lives, so that the
other places point to it instead of repeating it. It is defined by a line holding only its title,
`Note` followed by the title in square brackets, at the start of a comment block (`# `, ` * ` in C)
or of a docstring paragraph, with the explanation underneath. Elsewhere the same words cite it,
mid-sentence, possibly broken across comment lines or string literals. A citation whose title
matches no definition (a renamed or deleted note, a shortened title) leaves the reader with
nothing to find.

Definitions are looked for in the package sources (src/) and the documents the project ships
(README.md, bench/README.md); citations in the sources, the tests, setup.py, bench/, tools/ and
examples/. Generated files are skipped: Cython's .c output, and a .pyx/.pxd/.pxi made from a
Tempita template (`X.tp` beside it) whose template is read instead.
"""
import collections
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCE_SUFFIXES = {".py", ".pyx", ".pxd", ".pxi", ".pyi", ".h", ".tp", ".md"}
SKIP_DIRS = {"build", "__pycache__", ".git", "corpus"}

pytestmark = pytest.mark.skipif(not (ROOT / "src" / "fastgrad").is_dir(),
                                reason="needs the source tree (src/fastgrad), not an installed copy")

# A definition: the title alone on its line, after a comment marker, a docstring's opening quotes
# or a Markdown heading, if any.
DEFINITION = re.compile(r'^\s*(?:#+|/?\*+|//|[rRuU]?"""|[rRuU]?\'\'\')?\s*Note \[([^\]\n]+)\]\s*$')
# A citation may run over lines: its title goes on after the next line's comment marker.
CITATION = re.compile(r"Note \[([^\]]+)\]")
LINE_BREAK = re.compile(r"[ \t]*\n[ \t]*(?:#+|\*(?!/)|//)?[ \t]*")
STRING_JOIN = re.compile(r"""\s*(["'])\s+\1\s*""")   # "Note [One node per " "recurrent layer]"
# A citation may say where the note is: "Note [...] in engine.pyx", "Note [...] (ops_index.pyx)".
WHERE = re.compile(r"\s*(?:in\s+|\()`?([\w/.]+\.(?:pyx|pxd|pxi|pyi|py|h|tp|md))\b")


def _files(root, paths):
    for top in paths:
        top = root / top
        found = [top] if top.is_file() else sorted(top.rglob("*")) if top.is_dir() else []
        for p in found:
            if not p.is_file() or p.suffix not in SOURCE_SUFFIXES or p == pathlib.Path(__file__):
                continue
            if SKIP_DIRS.intersection(p.relative_to(root).parts[:-1]):
                continue
            if p.suffix != ".tp" and p.with_name(p.name + ".tp").exists():
                continue                                  # generated from its template
            yield p


def _title(raw):
    return " ".join(STRING_JOIN.sub(" ", raw).split())


def scan(root=ROOT, defining=("src", "README.md", "bench/README.md"),
         citing=("src", "tests", "setup.py", "bench", "tools", "examples")):
    """(defined, cited, pointed): note title -> ["path:line", ...] where it is defined / cited;
    pointed: (title, the file a citation names as the note's home, "path:line" of the citation)."""
    defined, cited, pointed = collections.defaultdict(list), collections.defaultdict(list), []
    for p in sorted(set(_files(root, defining))):
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            m = DEFINITION.match(line)
            if m:
                defined[_title(m.group(1))].append(f"{p.relative_to(root)}:{n}")
    for p in sorted(set(_files(root, citing))):
        lines = p.read_text(encoding="utf-8").splitlines()
        for n, line in enumerate(lines, 1):
            for start in (m.start() for m in re.finditer(r"Note \[", line)):
                # the citation, with up to three following lines joined to it
                text = LINE_BREAK.sub(" ", "\n".join([line[start:]] + lines[n:n + 3]))
                m = CITATION.match(text)
                if m:
                    cited[_title(m.group(1))].append(f"{p.relative_to(root)}:{n}")
                    home = WHERE.match(text, m.end())
                    if home:
                        pointed.append((_title(m.group(1)), home.group(1),
                                        f"{p.relative_to(root)}:{n}"))
    return defined, cited, pointed


def _holds(definition, name):
    """Is `name` (ops_index.pyx, _core/__init__.py) the file of `definition` ("path:line"), or the
    template it is generated from?"""
    path = "/" + definition.rsplit(":", 1)[0]
    return path.endswith("/" + name) or path.endswith("/" + name + ".tp")


DEFINED, CITED, POINTED = scan()


def test_the_scan_finds_notes():
    """Guards the scan itself: a pattern that matched nothing would pass the checks below."""
    assert len(DEFINED) >= 20 and len(CITED) >= 20, (sorted(DEFINED), sorted(CITED))
    assert "Stealing the incoming gradient" in DEFINED and "Saved outputs" in CITED


def test_every_cited_note_is_defined():
    missing = {title: where for title, where in CITED.items() if title not in DEFINED}
    assert not missing, "notes cited but defined nowhere:\n" + "\n".join(
        f"  Note [{title}] cited at {', '.join(where)}" for title, where in sorted(missing.items()))


def test_a_citation_that_names_a_file_names_the_notes_file():
    """"Note [X] in engine.pyx" sends the reader to engine.pyx: the note must be there (a note
    that moved with its code leaves such pointers behind)."""
    wrong = [(title, name, where) for title, name, where in POINTED
             if title in DEFINED and not any(_holds(d, name) for d in DEFINED[title])]
    assert len(POINTED) >= 10
    assert not wrong, "citations naming a file that does not hold the note:\n" + "\n".join(
        f"  {where}: Note [{title}] in {name}, but it is defined at {', '.join(DEFINED[title])}"
        for title, name, where in wrong)


def test_every_note_is_defined_once():
    twice = {title: where for title, where in DEFINED.items() if len(where) > 1}
    assert not twice, "notes defined more than once:\n" + "\n".join(
        f"  Note [{title}] at {', '.join(where)}" for title, where in sorted(twice.items()))


@pytest.mark.parametrize("text, defined, cited", [
    ("# Note [A b]\n# why\nx = 1  # Note [A b]\n", ["A b"], ["A b"]),
    ("x = 1  # see Note [A\n#   b] here\n", [], ["A b"]),
    ('"""Doc.\n\nNote [C d]\nwhy\n"""\n', ["C d"], []),
    (" * Note [E f]\n * why (Note [G h] in x.c)\n", ["E f"], ["G h"]),
    ('x = ("Note [One "\n     "two]")\n', [], ["One two"]),
    ("# Note [Sel, not mask]: the one way a backward zeroes\n", [], ["Sel, not mask"]),
    ('"""Note [K]: x as a (rows, C) array."""\n', [], ["K"]),
])
def test_what_counts_as_definition_and_citation(text, defined, cited, tmp_path):
    """A title alone on its line defines a note; anywhere else (followed by text on its line,
    broken over lines or string literals) the same words cite it."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "m.pyx").write_text(text)
    got_defined, got_cited, _ = scan(tmp_path, ("src",), ("src",))
    assert sorted(got_defined) == sorted(defined)
    assert sorted(got_cited) == sorted(set(defined) | set(cited))


@pytest.mark.parametrize("text, pointed", [
    ("# see Note [A b] in engine.pyx.\n", [("A b", "engine.pyx")]),
    ("# see (Note [A b] in\n# _core/__init__.py)\n", [("A b", "_core/__init__.py")]),
    ("# Note [A b] (ops_index.pyx): more\n", [("A b", "ops_index.pyx")]),
    ("# Note [A b] in the engine\n", []),
])
def test_what_counts_as_naming_the_notes_file(text, pointed, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "m.pyx").write_text(text)
    assert [p[:2] for p in scan(tmp_path, ("src",), ("src",))[2]] == pointed
    assert _holds("src/fastgrad/_core/kernels.pyx.tp:3", "kernels.pyx")
    assert not _holds("src/fastgrad/_core/ops_blas.pyx:3", "blas.pyx")
