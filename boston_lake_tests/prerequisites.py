"""What the whole suite needs from the OS, checked before it starts so that a missing one is named, not guessed.

`make test` runs this first; `.ci/run` installs the same packages on a fresh machine. `make test-fast` needs none.
"""

import glob
import shutil
import sys
from pathlib import Path

# (what is missing, how to tell, the Debian package that brings it, which tier needs it)
PREREQUISITES = [
    ("Java 17", lambda: shutil.which("java") is not None, "openjdk-17-jre-headless", "spark"),
    ("Chromium", lambda: Path("/usr/bin/chromium").exists(), "chromium", "browser"),
    (
        "PostgreSQL server binaries",
        lambda: shutil.which("initdb") is not None or bool(glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        "postgresql",
        "postgres",
    ),
]


def missing() -> list[tuple[str, str, str]]:
    return [(name, package, tier) for name, present, package, tier in PREREQUISITES if not present()]


def main() -> int:
    absent = missing()
    for name, _, tier in absent:
        print(f"missing: {name} (the '{tier}' tests need it)", file=sys.stderr)
    if absent:
        packages = " ".join(package for _, package, _ in absent)
        print(
            f"install with: sudo apt-get update && sudo apt-get install -y {packages}\n"
            "or run the tests that need none of them: make test-fast",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
