"""Fail when requirements/dev.lock was not refreshed after pyproject.toml's dependencies changed.

The lock records a hash of what it was resolved from (the dependencies, the dev extra and
requirements/dev.in); this recomputes it. Only those inputs count: editing a tool's settings in
pyproject.toml needs no refresh. Standard library only, so it runs before any install.

    python scripts/lockcheck.py [--root DIR]    # exit 0: in step; 1: refresh with scripts/dev.sh lock
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tomllib
from pathlib import Path

LOCK = Path("requirements/dev.lock")
PINS = Path("requirements/dev.in")
HASH_LINE = "# inputs-sha256: "
REFRESH = "scripts/dev.sh lock"


def inputs_hash(root: Path) -> str:
    """What the lock was resolved from, order- and spacing-insensitive."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    pins = [line.split("#")[0].strip() for line in (root / PINS).read_text().splitlines()]
    inputs = {
        "dependencies": sorted(_squash(dep) for dep in project["dependencies"]),
        "dev": sorted(_squash(dep) for dep in project["optional-dependencies"]["dev"]),
        "pins": sorted(pin for pin in (_squash(p) for p in pins) if pin),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def recorded_hash(lock_text: str) -> str | None:
    for line in lock_text.splitlines():
        if line.startswith(HASH_LINE):
            return line.removeprefix(HASH_LINE).split()[0]
    return None


def problems(root: Path) -> list[str]:
    lock_path = root / LOCK
    if not lock_path.exists():
        return [f"{LOCK} is missing"]
    lock_text = lock_path.read_text()
    found: list[str] = []
    recorded = recorded_hash(lock_text)
    if recorded is None:
        found.append(f"{LOCK} has no '{HASH_LINE.strip()}' line")
    elif recorded != inputs_hash(root):
        found.append(f"pyproject.toml's dependencies or {PINS} changed after {LOCK} was made")
    pinned = {_name(line.split("==")[0]) for line in lock_text.splitlines() if "==" in line[:80]}
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    for dep in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        name = _name(re.split(r"[\s\[<>=!~;]", dep, maxsplit=1)[0])
        if name != "torch" and name not in pinned:  # torch: installed first, outside the lock
            found.append(f"{dep!r} is not pinned in {LOCK}")
    return found


def _squash(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement)


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--print-hash", action="store_true", help="print the inputs' hash and exit")
    args = parser.parse_args()
    if args.print_hash:
        print(inputs_hash(args.root))
        return 0
    found = problems(args.root)
    for problem in found:
        print(f"lock check: {problem}", file=sys.stderr)
    if found:
        print(
            f"lock check: refresh the lock with `{REFRESH}` and commit it with pyproject.toml",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
