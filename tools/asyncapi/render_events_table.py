"""Render the events of an AsyncAPI document as a Markdown table inside a README.

    python tools/asyncapi/render_events_table.py           # rewrite the table in the README
    python tools/asyncapi/render_events_table.py --check   # exit 1 when the README is stale (CI)

The table goes between the lines `<!-- events-table:start -->` and `<!-- events-table:end -->`;
the rest of the README is left as it is. Defaults: packages/dicom-events/asyncapi.yaml and its
README.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DOCUMENT = REPO_ROOT / "packages" / "dicom-events" / "asyncapi.yaml"
START_MARKER = "<!-- events-table:start -->"
END_MARKER = "<!-- events-table:end -->"
GENERATED_NOTE = (
    "<!-- generated from asyncapi.yaml by tools/asyncapi/render_events_table.py: do not edit -->"
)


class RenderError(Exception):
    """The document or the README is not as the renderer needs it."""


def _resolve(document: Mapping[str, Any], node: Any) -> Any:
    """Follow a local `$ref` (`#/a/b`) once; anything else is returned as it is."""
    if not isinstance(node, Mapping) or "$ref" not in node:
        return node
    reference = str(node["$ref"])
    if not reference.startswith("#/"):
        return node
    target: Any = document
    for part in reference[2:].split("/"):
        if not isinstance(target, Mapping) or part not in target:
            raise RenderError(f"unresolved reference {reference}")
        target = target[part]
    return _resolve(document, target)


def _message_ref(document: Mapping[str, Any], node: Any) -> str:
    """The `#/components/messages/...` reference a channel's message stands for."""
    while isinstance(node, Mapping) and "$ref" in node:
        reference = str(node["$ref"])
        if reference.startswith("#/components/messages/"):
            return reference
        node = _resolve(document, {"$ref": reference}) if reference.startswith("#/") else None
    raise RenderError("a channel message does not lead to #/components/messages")


def _carriers(document: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """For each message reference: protocol -> the address of the channel that carries it."""
    servers = document.get("servers", {})
    carriers: dict[str, dict[str, str]] = {}
    for channel in document.get("channels", {}).values():
        protocols = {
            str(_resolve(document, server).get("protocol")) for server in channel.get("servers", [])
        } or {str(server.get("protocol")) for server in servers.values()}
        for message in channel.get("messages", {}).values():
            reference = _message_ref(document, message)
            for protocol in protocols:
                carriers.setdefault(reference, {})[protocol] = str(channel.get("address"))
    return carriers


def _schema_link(message: Mapping[str, Any]) -> str:
    payload = message.get("payload", {})
    schema = payload.get("schema", payload) if isinstance(payload, Mapping) else {}
    reference = schema.get("$ref") if isinstance(schema, Mapping) else None
    if not reference:
        return ""
    target = str(reference).removeprefix("./")
    return f"[{Path(target).name}]({target})"


def render_table(document: Mapping[str, Any]) -> str:
    """The Markdown table of the document's messages, in the document's order."""
    messages = document.get("components", {}).get("messages", {})
    if not messages:
        raise RenderError("the document has no components.messages")
    carriers = _carriers(document)
    lines = [
        "| Event type | Orthanc change | Enabled by | RabbitMQ routing key | "
        "SNS attribute `type` | `data` | JSON Schema |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, message in messages.items():
        channels = carriers.get(f"#/components/messages/{key}", {})
        routing_key = channels.get("amqp")
        cells = [
            f"`{message.get('name', key)}`",
            str(message.get("x-orthanc-change", "")),
            f"`DicomEvents.{message['x-enabled-by']}`" if "x-enabled-by" in message else "",
            f"`{routing_key}`" if routing_key else "",
            f"`{message.get('name', key)}`" if "sns" in channels else "",
            str(message.get("x-data", "")),
            _schema_link(message),
        ]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def replace_table(readme: str, table: str) -> str:
    """`readme` with everything between the markers replaced by `table`."""
    start = readme.find(START_MARKER)
    end = readme.find(END_MARKER)
    if start < 0 or end < 0 or end < start:
        raise RenderError(f"the README needs the lines {START_MARKER} and {END_MARKER}, in order")
    head = readme[: start + len(START_MARKER)]
    return f"{head}\n{GENERATED_NOTE}\n\n{table}\n\n{readme[end:]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--document", type=Path, default=DEFAULT_DOCUMENT)
    parser.add_argument("--readme", type=Path, help="default: README.md beside the document")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when stale")
    arguments = parser.parse_args(argv)
    readme_path: Path = arguments.readme or arguments.document.parent / "README.md"
    try:
        document = yaml.safe_load(arguments.document.read_text(encoding="utf-8"))
        current = readme_path.read_text(encoding="utf-8")
        updated = replace_table(current, render_table(document))
    except (OSError, RenderError, yaml.YAMLError) as error:
        print(f"render_events_table: {error}", file=sys.stderr)
        return 2
    if updated == current:
        return 0
    if arguments.check:
        print(
            f"{readme_path} is out of date with {arguments.document}: run "
            "python tools/asyncapi/render_events_table.py",
            file=sys.stderr,
        )
        return 1
    readme_path.write_text(updated, encoding="utf-8")
    print(f"wrote the events table of {readme_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
