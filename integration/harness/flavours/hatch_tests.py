"""Each distribution's unit tests on the Python of a flavour's root filesystem (3.14 on sid).

The same command as on the host (`hatch test --python X.Y --randomize`, one distribution at a
time), run chrooted: Hatch itself lives in a venv of the rootfs (/opt/hatch, made once, rebuilt
when its pinned version changes) and keeps its environments in the rootfs too, so a rootfs
rebuild starts them afresh. The checkout is shared at its own path.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from orthanc_fake.samples import find_samples_dir

from ..processes import HarnessError
from . import (
    REPO_ROOT,
    chroot_command,
    chroot_environment,
    ensure_rootfs,
    host_ca_bundle,
    inside,
    read_rootfs_stamp,
    run_chrooted,
)

HATCH_VENV = PurePosixPath("/opt/hatch")
HATCH_DATA = PurePosixPath("/opt/hatch-data")
HATCH_STAMP = HATCH_VENV / "harness-stamp.json"
# Where the host's certificate folder is bound: pip and Hatch trust what the host's pip trusts
# (a proxy's CA, say) without the rootfs keeping it.
HOST_CERTS = PurePosixPath("/run/host-certs")


def _trust_host_certificates() -> tuple[list[tuple[Path, PurePosixPath]], dict[str, str]]:
    bundle = host_ca_bundle()
    if bundle is None:
        return [], {}
    inside_path = str(HOST_CERTS / bundle.name)
    variables = ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
    return [(bundle.parent, HOST_CERTS)], dict.fromkeys(variables, inside_path)


def pinned_hatch(requirements: Path = REPO_ROOT / "requirements-dev.txt") -> str:
    """The `hatch==X` line of the development requirements: the same Hatch as on the host."""
    found = re.search(r"^hatch==\S+", requirements.read_text(encoding="utf-8"), re.MULTILINE)
    if found is None:
        raise HarnessError(f"{requirements} pins no hatch version")
    return found.group(0)


def ensure_hatch(rootfs: Path, python_abi: str) -> None:
    requirement = pinned_hatch()
    stamp = inside(rootfs, HATCH_STAMP)
    if stamp.exists() and json.loads(stamp.read_text()).get("requirement") == requirement:
        return
    python = f"/usr/bin/python{python_abi}"
    script = (
        f"rm -rf {HATCH_VENV} {HATCH_DATA} && {python} -m venv {HATCH_VENV} && "
        f"{HATCH_VENV}/bin/pip install -q --no-cache-dir '{requirement}'"
    )
    binds, trust = _trust_host_certificates()
    run_chrooted(rootfs, ["/bin/sh", "-c", script], binds=binds, env=trust, timeout=600)
    stamp.write_text(json.dumps({"requirement": requirement}) + "\n")


def hatch_test(flavour: str, packages: Sequence[Path]) -> int:
    """Run each package's `hatch test` on the flavour's Python; the first failing status."""
    rootfs = ensure_rootfs(flavour)
    built = read_rootfs_stamp(flavour)
    assert built is not None  # ensure_rootfs wrote it
    python_abi = built["versions"]["python_abi"]
    ensure_hatch(rootfs, python_abi)
    binds, trust = _trust_host_certificates()
    env = {
        **chroot_environment(),
        **trust,
        "PATH": f"{HATCH_VENV}/bin:{chroot_environment()['PATH']}",
        "HATCH_DATA_DIR": str(HATCH_DATA),
        "HATCH_CACHE_DIR": str(HATCH_DATA / "cache"),
    }
    shared = [REPO_ROOT]
    samples = find_samples_dir(REPO_ROOT)
    if samples is not None:  # as on the host: the tests that read the samples run
        shared.append(samples)
        env["DICOM_SAMPLES_DIR"] = str(samples)
    for package in packages:
        folder = package.resolve()
        if not (folder / "pyproject.toml").is_file():
            raise HarnessError(f"{package} holds no pyproject.toml")
        test = f"hatch env prune && hatch test --python {python_abi} --randomize -q"
        argv = ["/bin/sh", "-c", test]
        command = chroot_command(rootfs, argv, shared=shared, binds=binds, cwd=folder)
        print(
            f"harness: {flavour}: hatch test of {folder.name} on Python {python_abi}",
            file=sys.stderr,
            flush=True,
        )
        status = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, check=False).returncode
        if status != 0:
            return status
    return 0
