"""The tests' own layout, as a newcomer looks for a test: tests/PACKAGE/ holds the
tests of gpunet/PACKAGE/, tests/ itself those of the top-level modules and of the
checkout (packaging, README, tutorial, CI); what tests share lives in tests/helpers/,
and no test module imports another (nor conftest)."""
import ast
from collections import Counter

from helpers.paths import ROOT

TESTS = ROOT / "tests"


def python_files():
    return sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)


def test_each_test_folder_is_named_for_a_package():
    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and p.name != "__pycache__"}
    packages = {p.parent.name for p in (ROOT / "gpunet").glob("*/__init__.py")}
    assert "helpers" in folders and (TESTS / "helpers" / "__init__.py").is_file()
    assert folders - {"helpers"} <= packages, sorted(folders - {"helpers"} - packages)
    for folder in folders - {"helpers"}:
        assert any((TESTS / folder).glob("test_*.py")), f"tests/{folder}/ holds no test module"


def test_test_modules_have_distinct_names():
    """pytest imports each test module by its basename (rootdir, no __init__.py)."""
    names = Counter(p.name for p in python_files() if p.name.startswith("test_"))
    assert [name for name, count in names.items() if count > 1] == []


def test_no_module_of_the_tests_imports_a_test_module_or_conftest():
    """Shared code is in tests/helpers/, so a test module can move, or be run alone."""
    found = []
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.relative_to(ROOT)}:{node.lineno}: {name}" for name in names
                      if name.split(".")[-1].startswith(("test_", "conftest"))]
    assert found == []
