"""pytest imports test modules by their file name (tests/ is a package, its folders are not): two test files of
one name in different folders stop collection with 'import file mismatch'. Keep every test file name unique."""

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_test_file_names_are_unique():
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert not [n for n, k in names.items() if k > 1], "rename one of each: " + ", ".join(
        str(p.relative_to(TESTS)) for p in TESTS.rglob("test_*.py") if names[p.name] > 1
    )
