"""Find the Orthanc plugins installed in this environment through their entry points."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

ENTRY_POINT_GROUP = "orthanc.python_plugins"


class UnknownPluginError(LookupError):
    """A requested plugin is not installed; the message lists the installed ones."""


@dataclass(frozen=True, order=True)
class InstalledPlugin:
    """One plugin as declared by its distribution: `<short-name> = "<module>:<factory>"`."""

    name: str
    distribution: str
    version: str
    module: str
    factory: str

    @classmethod
    def from_entry_point(cls, entry_point: EntryPoint) -> InstalledPlugin:
        module, _, factory = entry_point.value.partition(":")
        dist = entry_point.dist
        return cls(
            name=entry_point.name,
            distribution=dist.name if dist is not None else "",
            version=dist.version if dist is not None else "",
            module=module.strip(),
            factory=factory.strip() or "create",
        )

    def describe(self) -> str:
        return f"{self.name} ({self.distribution} {self.version})"


def installed_plugins() -> list[InstalledPlugin]:
    """Every installed plugin, sorted by short name (one entry per name)."""
    found = {
        ep.name: InstalledPlugin.from_entry_point(ep)
        for ep in entry_points(group=ENTRY_POINT_GROUP)
    }
    return sorted(found.values())


def resolve(requested: list[str], available: list[InstalledPlugin]) -> list[InstalledPlugin]:
    """Map short or distribution names to installed plugins, deduplicated, in canonical order."""
    chosen: dict[str, InstalledPlugin] = {}
    for wanted in requested:
        key = _normalise(wanted)
        match = next(
            (p for p in available if key in (_normalise(p.name), _normalise(p.distribution))),
            None,
        )
        if match is None:
            listing = ", ".join(p.describe() for p in available) or "none"
            raise UnknownPluginError(f"unknown plugin {wanted!r}; installed plugins: {listing}")
        chosen[match.name] = match
    return sorted(chosen.values())


def _normalise(name: str) -> str:
    # Distribution names compare case-insensitively with -, _ and . equivalent (PEP 503).
    return name.lower().replace("_", "-").replace(".", "-")
