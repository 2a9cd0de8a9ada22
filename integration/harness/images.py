"""Images the container paths build here, from Debian's packages and PyPI (no registry needed).

- `flavour_image(flavour)`: a flavour's root filesystem (Debian's orthanc and orthanc-python, their
  Python) imported as an image; the flavour's own venv and composed entry are left out, so that
  examples/Dockerfile installs the plugins the way it does on the orthancteam image;
- `plugins_image(base, kind)`: examples/Dockerfile on a base image, with this checkout's wheels;
- `rabbitmq_image()`, `localstack_image()`: the brokers of the compose files, from Debian's
  rabbitmq-server and PyPI's localstack-core, on the debian-sid image (integration/images/).

Every tag names its inputs (a hash), so an image whose tag exists is not built again. The docker
command line does the work (DOCKER_HOST says which engine); RUN steps reach the package
registries over the host's network (`--network host`).

    python -m integration.harness.images build [--flavour debian-sid]   # prints HARNESS_*_IMAGE=...

HARNESS_ORTHANC_IMAGE is the base that examples/Dockerfile builds on (with
HARNESS_ORTHANC_IMAGE_KIND `debian` for a flavour's image), as the container provider and the
example test read them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import flavours
from .processes import HarnessError

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples"
BROKER_RECIPES = REPO_ROOT / "integration" / "images"
REPOSITORY = "orthanc-python-plugins"
# The Debian base of the broker images: the only Debian image there is without a registry.
BROKER_BASE_FLAVOUR = "debian-sid"
# Left out of a flavour's image: the flavour's plugins, in their venv and the copies of it kept
# aside while a rebuilt one takes over (the Dockerfile installs its own), and what the kernel or
# Docker provide at run time.
IMPORT_EXCLUDES = (
    "./proc/*",
    "./sys/*",
    "./dev/*",
    f"./{flavours.PLUGINS_VENV.relative_to('/')}*",
    f"./{flavours.COMPOSED_ENTRY.parent.relative_to('/')}",
)
# The kinds of base image examples/Dockerfile knows (its ORTHANC_IMAGE_KIND).
IMAGE_KINDS = ("orthancteam", "debian")


def _log(message: str) -> None:
    print(f"harness: {message}", file=sys.stderr, flush=True)


def docker_command() -> str:
    found = shutil.which("docker")
    if found is None:
        raise HarnessError("the docker command line is not installed (apt-get install docker.io)")
    return found


def docker(*args: str, timeout: float = 600, stdin: bytes | None = None) -> str:
    """Run `docker ARGS...`; its output, or HarnessError with the end of it."""
    try:
        result = subprocess.run(
            [docker_command(), *args],
            input=stdin,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise HarnessError(f"docker {' '.join(args)} still ran after {timeout:.0f} s") from error
    output = (result.stdout + result.stderr).decode(errors="replace")
    if result.returncode != 0:
        tail = "\n".join(output.splitlines()[-40:])
        raise HarnessError(f"docker {' '.join(args)} failed ({result.returncode}):\n{tail}")
    return output


def image_exists(tag: str) -> bool:
    try:
        docker("image", "inspect", "--format", "{{.Id}}", tag, timeout=60)
    except HarnessError:
        return False
    return True


def image_id(tag: str) -> str:
    return docker("image", "inspect", "--format", "{{.Id}}", tag, timeout=60).strip()


def can_pull(tag: str) -> bool:
    """True when the engine has `tag` or pulls it now (False at once without a registry)."""
    if image_exists(tag):
        return True
    try:
        docker("pull", "--quiet", tag, timeout=900)
    except HarnessError:
        return False
    return True


def content_tag(repository: str, *parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return f"{REPOSITORY}/{repository}:{digest.hexdigest()[:16]}"


# -- Orthanc -------------------------------------------------------------------------------------


_imported: dict[str, str] = {}


def flavour_image(flavour: str) -> str:
    """The image of a flavour's root filesystem (built first when needed); its tag."""
    if flavour not in _imported:
        _imported[flavour] = _import_flavour(flavour)
    return _imported[flavour]


def _import_flavour(flavour: str) -> str:
    rootfs = flavours.ensure_rootfs(flavour)
    stamp = flavours.read_rootfs_stamp(flavour)
    if stamp is None:
        raise HarnessError(f"{rootfs}: no build stamp")
    tag = content_tag(f"orthanc-{flavour}", json.dumps(stamp, sort_keys=True), *IMPORT_EXCLUDES)
    if image_exists(tag):
        return tag
    versions = stamp["versions"]
    labels = {
        "org.opencontainers.image.title": f"Orthanc {versions['orthanc']} ({flavour})",
        "orthanc.version": versions["orthanc"],
        "orthanc.python-plugin.version": versions["plugin"],
        "orthanc.python.version": versions["python"],
    }
    changes = [f"LABEL {key}={json.dumps(value)}" for key, value in labels.items()]
    changes += ['ENV LANG="C.UTF-8"', 'CMD ["/bin/bash"]']
    started = time.monotonic()
    tar = subprocess.Popen(
        ["tar", "-C", str(rootfs), "--numeric-owner"]
        + [f"--exclude={pattern}" for pattern in IMPORT_EXCLUDES]
        + ["-c", "."],
        stdout=subprocess.PIPE,
    )
    try:
        argv = [docker_command(), "import"]
        for change in changes:
            argv += ["--change", change]
        result = subprocess.run(
            [*argv, "-", tag], stdin=tar.stdout, capture_output=True, timeout=900, check=False
        )
    finally:
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait(60)
    if result.returncode != 0 or tar.returncode != 0:
        # A tar that failed half-way may still have given docker a whole-looking image.
        subprocess.run([docker_command(), "image", "rm", tag], capture_output=True, check=False)
        raise HarnessError(
            f"importing {rootfs} as {tag} failed (tar {tar.returncode}, docker "
            f"{result.returncode}):\n{result.stderr.decode(errors='replace')[-3000:]}"
        )
    remove_older_tags(tag)
    _log(
        f"{flavour}: root filesystem imported as {tag} in {time.monotonic() - started:.1f} s "
        f"(Orthanc {versions['orthanc']}, Python plugin {versions['plugin']})"
    )
    return tag


def build_context(context: Path, sources: Mapping[str, Path]) -> None:
    """Copy `sources` (name in the context -> file or folder) into an empty `context`."""
    for name, source in sources.items():
        target = context / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copyfile(source, target)


def docker_build(context: Path, tag: str, build_args: Mapping[str, str], what: str) -> None:
    argv = ["build", "--network", "host", "--tag", tag]
    for name, value in build_args.items():
        argv += ["--build-arg", f"{name}={value}"]
    started = time.monotonic()
    docker(*argv, str(context), timeout=1800)
    _log(f"{what}: built {tag} in {time.monotonic() - started:.1f} s")
    remove_older_tags(tag)


def remove_older_tags(tag: str) -> None:
    """Untag the other tags of `tag`'s repository (earlier inputs): images do not pile up in the
    engine. One a container still uses stays."""
    repository = tag.rsplit(":", 1)[0]
    listed = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", repository, timeout=60)
    for older in listed.split():
        if older != tag:
            subprocess.run(
                [docker_command(), "image", "rm", older], capture_output=True, check=False
            )


def _add_host_ca_bundle(wheels: Path, build_args: dict[str, str]) -> None:
    """Let pip in a RUN step trust what the host's pip trusts (a proxy that intercepts TLS)."""
    bundle = flavours.host_ca_bundle()
    if bundle is not None:
        shutil.copyfile(bundle, wheels / "ca.pem")
        build_args["PIP_CERT"] = "/tmp/plugin-wheels/ca.pem"


def plugins_image(base_image: str, kind: str) -> str:
    """examples/Dockerfile built on `base_image` (of kind orthancteam or debian) with this
    checkout's wheels in wheels/; its tag."""
    if kind not in IMAGE_KINDS:
        raise HarnessError(f"image kind {kind!r}: expected one of {', '.join(IMAGE_KINDS)}")
    dockerfile = (EXAMPLES / "Dockerfile").read_bytes()
    entrypoint = (EXAMPLES / "debian" / "entrypoint.py").read_bytes()
    tag = content_tag(
        "orthanc-plugins",
        dockerfile,
        entrypoint,
        image_id(base_image),
        kind,
        flavours.sources_digest(REPO_ROOT),
    )
    if image_exists(tag):
        return tag
    with tempfile.TemporaryDirectory(prefix="orthanc-plugins-image-") as directory:
        context = Path(directory)
        build_context(
            context,
            {"Dockerfile": EXAMPLES / "Dockerfile", "debian": EXAMPLES / "debian"},
        )
        wheels = context / "wheels"
        wheels.mkdir()
        flavours.build_wheels(wheels, REPO_ROOT)
        build_args = {"ORTHANC_IMAGE": base_image, "ORTHANC_IMAGE_KIND": kind}
        _add_host_ca_bundle(wheels, build_args)
        docker_build(context, tag, build_args, f"examples/Dockerfile on {base_image}")
    return tag


# -- brokers -------------------------------------------------------------------------------------


def broker_image(name: str) -> str:
    """integration/images/<name>/ built on the debian-sid image; its tag."""
    recipe = BROKER_RECIPES / name
    base = flavour_image(BROKER_BASE_FLAVOUR)
    files = sorted(path for path in recipe.rglob("*") if path.is_file())
    parts: list[bytes | str] = [image_id(base)]
    for path in files:
        parts += [str(path.relative_to(recipe)), path.read_bytes()]
    tag = content_tag(name, *parts)
    if image_exists(tag):
        return tag
    with tempfile.TemporaryDirectory(prefix=f"{name}-image-") as directory:
        context = Path(directory) / "context"
        shutil.copytree(recipe, context)
        build_args = {"BASE_IMAGE": base}
        bundle = flavours.host_ca_bundle()
        if bundle is not None and b"ARG PIP_CERT" in (recipe / "Dockerfile").read_bytes():
            # The recipe copies its context to /tmp/recipe/ for the RUN step that runs pip.
            shutil.copyfile(bundle, context / "ca.pem")
            build_args["PIP_CERT"] = "/tmp/recipe/ca.pem"
        docker_build(context, tag, build_args, f"integration/images/{name}")
    return tag


def rabbitmq_image() -> str:
    return broker_image("rabbitmq")


def localstack_image() -> str:
    return broker_image("localstack")


BROKERS_BUILT_HERE = {"rabbitmq": rabbitmq_image, "localstack": localstack_image}


def broker_images(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The brokers' images where they are not the compose files' pinned ones: the
    HARNESS_<BROKER>_IMAGE set, else the one built here when the pinned one cannot be pulled."""
    from .containers import IMAGE_VARIABLES

    source = os.environ if environ is None else environ
    chosen: dict[str, str] = {}
    for service, build in BROKERS_BUILT_HERE.items():
        variable, pinned = IMAGE_VARIABLES[service]
        if source.get(variable, "").strip():
            chosen[service] = source[variable].strip()
        elif not can_pull(pinned):
            chosen[service] = build()
    return chosen


# -- command line --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m integration.harness.images",
        description="Build the images of the container paths here and print their tags.",
    )
    parser.add_argument("command", choices=["build"])
    choices = sorted(name for name in flavours.FLAVOURS if flavours.runs_chrooted(name))
    parser.add_argument("--flavour", default="debian-sid", choices=choices)
    arguments = parser.parse_args(argv)
    try:
        base = flavour_image(arguments.flavour)
        print(f"HARNESS_ORTHANC_IMAGE={base}")
        print("HARNESS_ORTHANC_IMAGE_KIND=debian")
        print(f"HARNESS_ORTHANC_PLUGINS_IMAGE={plugins_image(base, 'debian')}")
        print(f"HARNESS_RABBITMQ_IMAGE={rabbitmq_image()}")
        print(f"HARNESS_LOCALSTACK_IMAGE={localstack_image()}")
    except HarnessError as error:
        print(f"images: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
