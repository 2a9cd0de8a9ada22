"""Locate the shared DICOM sample files that tests and benchmarks read (kept outside the repo)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ENVIRONMENT_VARIABLE = "DICOM_SAMPLES_DIR"
_RELATIVE = Path("shared") / "dicom-samples"


def find_samples_dir(start: Path | None = None) -> Path | None:
    """The sample folder: $DICOM_SAMPLES_DIR, else `shared/dicom-samples` beside the checkout.

    "Beside the checkout" is looked for next to every ancestor of `start` (default: this file's
    checkout) and, for a clone of a local checkout (as CI makes), beside the clone's origin.
    """
    explicit = os.environ.get(ENVIRONMENT_VARIABLE)
    if explicit:
        path = Path(explicit)
        return path if path.is_dir() else None
    start = (start or Path(__file__)).resolve()
    for base in [*start.parents, *_origin_parents(start)]:
        candidate = base / _RELATIVE
        if candidate.is_dir():
            return candidate
    return None


def _origin_parents(start: Path) -> list[Path]:
    directory = start if start.is_dir() else start.parent
    try:
        origin = subprocess.run(
            ["git", "-C", str(directory), "config", "--get", "remote.origin.url"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return []
    if not origin or "://" in origin or not Path(origin).is_dir():
        return []
    return list(Path(origin).resolve().parents)
