"""tests/mutants.json, the planted bugs the suite must catch (tests/mutants.py runs them): each
edit still applies to the code, exactly once, and names tests that exist, so that the list
follows the code instead of rotting (running the mutants themselves takes about 3.5 hours)."""

import os
import re
import shlex

import mutants

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_mutant_applies_and_names_its_tests():
    listed = mutants.load()
    names = [m["name"] for m in listed]
    assert len(names) == len(set(names)), "two mutants of one name"
    for m in listed:
        assert set(m) == {"name", "file", "old", "new", "build", "tests", "why"}, m["name"]
        assert m["old"] != m["new"], m["name"]
        with open(os.path.join(ROOT, m["file"])) as f:
            text = f.read()
        assert mutants.apply(text, m) is not None, (
            f"mutant {m['name']}: its `old` text is not in {m['file']} exactly once (the code "
            "changed: update the mutant to the new code, keeping the bug it plants)")
        # the plugin is rebuilt for C++ mutants whose tests run the operator, never for others
        assert not m["build"] or m["file"].startswith("dali_msda/csrc/"), m["name"]
        paths = [a for a in shlex.split(m["tests"]) if a.startswith("tests")]
        assert paths and all(os.path.exists(os.path.join(ROOT, p)) for p in paths), m["name"]


def test_mutants_are_told_apart_from_stale_edits():
    m = {"old": "a < b", "new": "a <= b"}
    assert mutants.apply("if a < b: pass", m) == "if a <= b: pass"
    assert mutants.apply("no such text", m) is None
    assert mutants.apply("a < b or a < b", m) is None  # ambiguous: which one?


def test_the_readme_counts_them():
    """README's "Commands" gives the number of planted bugs: it follows the list."""
    with open(os.path.join(ROOT, "README.md")) as f:
        found = re.search(r"`tests/mutants\.json` \((\d+):", f.read())
    assert found, "README.md no longer says how many mutants tests/mutants.json lists"
    assert int(found.group(1)) == len(mutants.load())
