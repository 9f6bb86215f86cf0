"""`make test` names each missing OS prerequisite with the package that brings it, and README and `.ci/run` name the
same packages."""

import shutil
import subprocess
import sys
from pathlib import Path

from boston_lake_tests.prerequisites import PREREQUISITES

REPO = Path(__file__).resolve().parents[1]


def test_make_test_names_a_missing_java_with_the_command_that_installs_it(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # a PATH with make and nothing else: no java, no initdb
    bin_dir.mkdir()
    make = shutil.which("make")
    assert make, "make is what runs the suite"
    (bin_dir / "make").symlink_to(make)
    result = subprocess.run(
        ["make", "-s", "prerequisites", f"PYTHON={sys.executable}"],
        cwd=REPO,
        env={"PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert "missing: Java 17 (the 'spark' tests need it)" in lines
    install = next(line for line in lines if line.startswith("install with: "))
    assert install.startswith("install with: sudo apt-get update && sudo apt-get install -y openjdk-17-jre-headless")
    assert "or run the tests that need none of them: make test-fast" in lines


def test_readme_and_ci_name_every_prerequisite_package() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    packages = [package for _, _, package, _ in PREREQUISITES]
    assert f"sudo apt-get install -y {' '.join(packages)}" in readme
    assert all(f"missing+=({package})" in ci for package in packages)
