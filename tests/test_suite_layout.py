"""The suite's own layout: tests/README.md lists every test file (and only those), and every file
is named for what it tests, not for when or why it was written."""
import pathlib
import re

TESTS = pathlib.Path(__file__).resolve().parent
# Names that say when or why tests were written instead of what they test.
HISTORY = re.compile(r"(^|_)((issue|round|pr|bug|fix|fixes|regressions?|surface|misc|more|extra|"
                     r"new|old|todo|tmp|v)\d*|\d+)(_|$)")


def _test_files():
    return sorted(p.name for p in TESTS.glob("test_*.py"))


def test_readme_lists_every_test_file():
    listed = re.findall(r"^- `(test_\w+\.py)`", (TESTS / "README.md").read_text(), re.M)
    files = _test_files()
    assert len(files) > 40
    assert sorted(set(files) - set(listed)) == [], "test files tests/README.md does not describe"
    assert sorted(set(listed) - set(files)) == [], "tests/README.md describes files that do not exist"
    assert len(listed) == len(set(listed)), "a file described twice"


def test_files_are_named_by_subject():
    for old in ["issue3_surface", "round2", "reduce_more", "compat_misc", "fuzz_regressions"]:
        assert HISTORY.search(old), old                 # the pattern knows the names it refuses
    for subject in ["reductions", "int_ops", "conv", "zero_dim", "nn_init_utils", "engine_steal"]:
        assert not HISTORY.search(subject), subject
    named = [f for f in _test_files() if HISTORY.search(f[len("test_"):-len(".py")])]
    assert named == [], "files named by history rather than by subject"
