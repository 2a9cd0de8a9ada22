# DO NOT EDIT: generated from tools/plugin-kit/orthanc_plugin_kit.py. Regenerate with:
#   python tools/plugin-kit/generate.py
"""The Orthanc glue every plugin of this project shares: configuration errors, the host facade,
HTTP answers, the status route, the background thread and Orthanc's constants.

Differences between versions of Orthanc's Python plugin (4.0 on Debian 12, 4.2+, 5.x, 7.x) are
handled here and only here, detected by feature, never by version string.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

JSON_MIME = "application/json"
# The `orthanc` module Orthanc's Python plugin provides (no stubs), or the orthanc fake in tests.
OrthancModule = Any

# ---------------------------------------------------------------------------------- configuration


# Credentials in a URL, however many slashes follow the scheme (`amqps:/user:pass@host` too).
_URL_CREDENTIALS = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*:/*)(?P<user>[^/@:\s'\"]*):[^/\s'\"]*@"
)
_SECRET_KEY = re.compile(r"pass(word)?|secret|token|credential", re.IGNORECASE)


def mask_url_credentials(text: str) -> str:
    """`text` with the password of every URL in it replaced by `***`."""
    return _URL_CREDENTIALS.sub(r"\g<scheme>\g<user>:***@", text)


class ConfigurationError(ValueError):
    """An invalid configuration value; the message names the key path and the value seen.

    The value is shown as `***` when the key names a secret, and URL passwords are masked: the
    message goes to Orthanc's log.
    """

    def __init__(self, path: str, value: object, problem: str) -> None:
        self.path = path
        self.value = value
        key = path.rsplit(".", 1)[-1]
        seen = "***" if _SECRET_KEY.search(key) else mask_url_credentials(repr(value))
        super().__init__(f"{path}: {problem} (value seen: {seen})")


def config_object(raw: object, path: str, *, required: bool = False) -> Mapping[str, Any]:
    """A JSON object; an absent optional one reads as empty."""
    if raw is None and not required:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigurationError(path, raw, "expected a JSON object")
    return raw


def config_bool(raw: object, path: str) -> bool:
    if not isinstance(raw, bool):
        raise ConfigurationError(path, raw, "expected true or false")
    return raw


def config_int(raw: object, path: str, low: int, high: int) -> int:
    """An integer from `low` to `high` (JSON true/false are not integers here)."""
    if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
        raise ConfigurationError(path, raw, f"expected an integer from {low} to {high}")
    return raw


def config_strings(raw: object, path: str) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(item, str) and item for item in raw):
        raise ConfigurationError(path, raw, "expected a list of non-empty strings")
    return list(raw)


def reject_unknown_keys(section: Mapping[str, Any], path: str, known: frozenset[str]) -> None:
    for key in section:
        if key not in known:
            raise ConfigurationError(f"{path}.{key}", section[key], "unknown key")


def configured_directory(orthanc: OrthancModule, path: str, key_path: str) -> str:
    """A directory of the configuration, resolved as Orthanc resolves its own paths (a relative
    one against the configuration file's folder), created if missing and checked writable."""
    if not os.path.isabs(path):
        getter = getattr(orthanc, "GetConfigurationPath", None)
        base = str(getter() or "") if getter is not None else ""
        if base and not os.path.isdir(base):
            base = os.path.dirname(base)
        path = os.path.join(base or os.getcwd(), path)
    path = os.path.normpath(path)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise ConfigurationError(key_path, path, f"cannot create the directory: {error}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigurationError(key_path, path, "the directory is not writable")
    return path


def user_metadata_index(orthanc_config: Mapping[str, Any], name: str, example: int) -> int:
    """The index `UserMetadata` gives `name`: Orthanc stores plugin metadata only once declared."""
    path = f"UserMetadata.{name}"
    declared = orthanc_config.get("UserMetadata")
    if not isinstance(declared, Mapping) or name not in declared:
        raise ConfigurationError(
            path, None, f"declare the metadata {name!r} in UserMetadata (e.g. {example})"
        )
    return config_int(declared[name], path, 1024, 65535)


def user_content_type_index(orthanc_config: Mapping[str, Any], name: str) -> int | None:
    """The index `UserContentType` gives the attachment `name`, None when it is not declared.

    Orthanc takes an index or `[index, "mime/type"]`; user attachments are 1024 to 65535.
    """
    declared = orthanc_config.get("UserContentType")
    if not isinstance(declared, Mapping) or name not in declared:
        return None
    path = f"UserContentType.{name}"
    value = declared[name]
    if isinstance(value, list) and len(value) == 2 and isinstance(value[1], str):
        value = value[0]
    elif isinstance(value, list):
        raise ConfigurationError(path, declared[name], 'expected an index or [index, "mime/type"]')
    return config_int(value, path, 1024, 65535)


# ------------------------------------------------------------------------------ Orthanc constants


@dataclass(frozen=True, slots=True)
class OrthancConstants:
    """The change and resource types a plugin reacts to, read from the `orthanc` module."""

    deleted: int
    new_instance: int
    new_series: int
    new_child_instance: int
    stable_patient: int
    stable_series: int
    stable_study: int
    orthanc_started: int
    orthanc_stopped: int
    updated_metadata: int
    updated_attachment: int
    patient: int
    study: int
    series: int
    instance: int

    @classmethod
    def from_module(cls, orthanc: OrthancModule) -> OrthancConstants:
        change, level = orthanc.ChangeType, orthanc.ResourceType
        return cls(
            deleted=int(change.DELETED),
            new_instance=int(change.NEW_INSTANCE),
            new_series=int(change.NEW_SERIES),
            new_child_instance=int(change.NEW_CHILD_INSTANCE),
            stable_patient=int(change.STABLE_PATIENT),
            stable_series=int(change.STABLE_SERIES),
            stable_study=int(change.STABLE_STUDY),
            orthanc_started=int(change.ORTHANC_STARTED),
            orthanc_stopped=int(change.ORTHANC_STOPPED),
            updated_metadata=int(change.UPDATED_METADATA),
            updated_attachment=int(change.UPDATED_ATTACHMENT),
            patient=int(level.PATIENT),
            study=int(level.STUDY),
            series=int(level.SERIES),
            instance=int(level.INSTANCE),
        )

    def level_name(self, level: int) -> str | None:
        """ "Patient", "Study", "Series" or "Instance", as `/changes` spells them."""
        names = {
            self.patient: "Patient",
            self.study: "Study",
            self.series: "Series",
            self.instance: "Instance",
        }
        return names.get(level)


# ------------------------------------------------------------------------------------ host facade

# Orthanc refuses (and logs an error for) thread names of 16 characters or more.
THREAD_NAME_MAX = 15


class HostError(RuntimeError):
    """A call into Orthanc failed; `code` is Orthanc's error code when it gave one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class NotFound(HostError):
    """Orthanc answered that the resource (or the item asked of it) does not exist."""


# One path segment of a route's pattern, printable ASCII only: Orthanc's Python plugin answers 500
# for a path that is not UTF-8 before any plugin code runs; such a path then matches no route and
# gets Orthanc's own 404.
ID_SEGMENT = "([!-.0-~]+)"


def quote_id(resource_id: str) -> str:
    """A resource id as one URI path segment: nothing in it can add a query or a path."""
    return quote(resource_id, safe="")


def orthanc_at_least(orthanc: OrthancModule, major: int, minor: int, revision: int) -> bool:
    """Whether Orthanc's core (not its Python plugin) is this version or later; False when it
    cannot tell, so the caller keeps the behaviour every version supports."""
    check = getattr(orthanc, "CheckVersionAdvanced", None)
    if check is None:
        return False
    try:
        return bool(check(major, minor, revision))
    except Exception:  # an unusable answer
        return False


def core_labels_status_bodies(orthanc: OrthancModule) -> bool:
    """Whether Orthanc itself labels a status sent with a body (`text/plain` plus `nosniff`).

    Orthanc 1.12.2 and later add those headers to every `SendHttpStatus` with a body, after the
    plugin's own: a plugin that also sets `Content-Type` answers with two. This is the core's
    behaviour, not the Python plugin's, so the core's version is asked.
    """
    return orthanc_at_least(orthanc, 1, 12, 2)


# Python plugin 7.1 (Orthanc 1.13) releases its reference to a REST callback after the
# interpreter is finalized: a callback nothing else references is then freed too late and Orthanc
# dies with SIGSEGV on every shutdown. Referenced from here, each lives as long as the interpreter.
_ROUTE_CALLBACKS: list[Callable[..., None]] = []


def _no_redaction(text: str) -> str:
    return text


class OrthancHost:
    """A plugin's one view of Orthanc: its built-in REST API, global properties, metrics, log.

    Every failure of a REST call becomes `NotFound` or `HostError`. Once `close()` is called
    (after Orthanc said it is stopping), every call raises `HostError` instead of calling into an
    Orthanc that is being torn down.
    """

    def __init__(
        self, orthanc: OrthancModule, redact: Callable[[str], str] = _no_redaction
    ) -> None:
        self._orthanc = orthanc
        self._redact = redact
        self.constants = OrthancConstants.from_module(orthanc)
        errors = getattr(orthanc, "ErrorCode", None)
        self._not_found_codes = frozenset(
            int(getattr(errors, name, default))
            for name, default in (("UNKNOWN_RESOURCE", 17), ("INEXISTENT_ITEM", 7))
        )
        self.closed = False
        self._revisions: _Loopback | None = None
        self.core_labels_status_bodies = core_labels_status_bodies(orthanc)

    # -- REST

    def get(self, uri: str) -> bytes:
        return self._rest("GET", uri, lambda: self._orthanc.RestApiGet(uri))

    def get_json(self, uri: str) -> Any:
        return json.loads(self.get(uri))

    def post(self, uri: str, body: bytes | str = b"") -> bytes:
        return self._rest("POST", uri, lambda: self._orthanc.RestApiPost(uri, body))

    def put(self, uri: str, body: bytes | str) -> bytes:
        return self._rest("PUT", uri, lambda: self._orthanc.RestApiPut(uri, body))

    def delete(self, uri: str) -> None:
        self._rest("DELETE", uri, lambda: self._orthanc.RestApiDelete(uri))

    def _rest(self, method: str, uri: str, call: Callable[[], Any]) -> bytes:
        self._check_open()
        try:
            answer = call()
        except Exception as error:
            code = error.args[0] if error.args and isinstance(error.args[0], int) else None
            kind = NotFound if code in self._not_found_codes else HostError
            raise kind(self._redact(f"{method} {uri}: {error}"), code) from None
        if answer is None:
            return b""
        return answer if isinstance(answer, bytes) else str(answer).encode()

    # -- metadata, with Orthanc's revisions

    def put_metadata(self, uri: str, value: bytes) -> None:
        """Write one metadata item (`/{level}/{id}/metadata/{name}`), whatever its revision.

        With `"CheckRevisions": true` Orthanc refuses to overwrite or delete metadata without the
        current revision in `If-Match`, which its internal API cannot carry: the write then goes
        through Orthanc's own HTTP server on loopback (authorised by a plugin token), retried
        when another writer got in between.
        """
        if not self._checks_revisions():
            self.put(uri, value)
            return
        self._with_revision("PUT", uri, value)

    def delete_metadata(self, uri: str) -> None:
        """Delete one metadata item; `NotFound` when there is none."""
        if not self._checks_revisions():
            self.delete(uri)
            return
        self._with_revision("DELETE", uri, None)

    # An attachment (`/{level}/{id}/attachments/{name}`) carries revisions as metadata does.
    put_attachment = put_metadata
    delete_attachment = delete_metadata

    def _checks_revisions(self) -> bool:
        if self._revisions is None:
            self._check_open()
            configuration = json.loads(self._orthanc.GetConfiguration())
            self._revisions = _Loopback(self._orthanc, configuration)
        return self._revisions.enabled

    def _with_revision(self, method: str, uri: str, value: bytes | None) -> None:
        assert self._revisions is not None
        self._check_open()
        for attempt in range(REVISION_ATTEMPTS):
            status, headers, _ = self._revisions.call("GET", uri)
            if status == 404 and method == "DELETE":
                raise NotFound(f"DELETE {uri}: no such metadata", 17)
            # Orthanc wants its whole ETag back (`"<revision>-<md5>"`), not the revision alone.
            etag = headers.get("etag") if status == 200 else None
            extra = {"If-Match": etag} if etag else {}
            status, _, body = self._revisions.call(method, uri, value, extra)
            if 200 <= status < 300:
                return
            if status == 404:
                raise NotFound(f"{method} {uri}: unknown resource", 17)
            if status != 409:
                raise HostError(self._redact(f"{method} {uri}: HTTP {status} {body[:200]!r}"))
            time.sleep(0.01 * (attempt + 1))  # another writer won: read its revision, try again
        raise HostError(f"{method} {uri}: revision conflict after {REVISION_ATTEMPTS} attempts")

    # -- global properties and metrics

    def get_global_property(self, index: int) -> str:
        """The stored value, or "" when unset."""
        self._check_open()
        return str(self._orthanc.GetGlobalProperty(index, "") or "")

    def set_global_property(self, index: int, value: str) -> None:
        self._check_open()
        self._orthanc.SetGlobalProperty(index, value)

    def set_metric(self, name: str, value: float) -> None:
        if not self.closed:
            self._orthanc.SetMetricsValue(name, float(value), self._orthanc.MetricsType.DEFAULT)

    # -- log (always allowed: a stopping plugin still says why)

    def log_info(self, message: str) -> None:
        self._orthanc.LogInfo(self._redact(message))

    def log_warning(self, message: str) -> None:
        self._orthanc.LogWarning(self._redact(message))

    def log_error(self, message: str) -> None:
        self._orthanc.LogError(self._redact(message))

    # -- threads and routes

    def name_current_thread(self, name: str) -> None:
        """Name the calling thread in Orthanc's logs (plugin 7+; older ones have no such call)."""
        setter = getattr(self._orthanc, "SetCurrentThreadName", None)
        if setter is not None:
            with contextlib.suppress(Exception):
                setter(name[:THREAD_NAME_MAX])

    def register_route(self, pattern: str, handler: Handler, plugin_name: str) -> None:
        """Serve `pattern` (Orthanc's regular expression) with `handler`; see `rest_callback`."""
        callback = rest_callback(handler, self, plugin_name)
        _ROUTE_CALLBACKS.append(callback)
        self._orthanc.RegisterRestCallback(pattern, callback)

    def close(self) -> None:
        self.closed = True

    def _check_open(self) -> None:
        if self.closed:
            raise HostError("Orthanc is stopping")


REVISION_ATTEMPTS = 10


class _Loopback:
    """Orthanc's own HTTP server on 127.0.0.1, for the calls its internal API cannot express."""

    def __init__(self, orthanc: OrthancModule, configuration: Mapping[str, Any]) -> None:
        self.enabled = bool(configuration.get("CheckRevisions", False))
        secure = bool(configuration.get("SslEnabled", False))
        port = configuration.get("HttpPort", 8042)
        self._base = f"{'https' if secure else 'http'}://127.0.0.1:{port}"
        self._context: ssl.SSLContext | None = None
        if secure:  # our own server on loopback, whatever name its certificate carries
            self._context = ssl.create_default_context()
            self._context.check_hostname = False
            self._context.verify_mode = ssl.CERT_NONE
        generate = getattr(orthanc, "GenerateRestApiAuthorizationToken", None)
        self._token = str(generate()) if self.enabled and generate is not None else None

    def call(
        self,
        method: str,
        uri: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(  # noqa: S310 - always http(s)://127.0.0.1
            self._base + uri, data=body, method=method, headers=dict(headers or {})
        )
        if self._token:
            request.add_header("Authorization", self._token)
        try:
            with urllib.request.urlopen(request, timeout=30, context=self._context) as answer:  # noqa: S310
                return answer.status, _lower_keys(answer.headers), answer.read()
        except urllib.error.HTTPError as error:
            return error.code, _lower_keys(error.headers), error.read()
        except OSError as error:
            raise HostError(f"{method} {uri} through Orthanc's HTTP server: {error}") from None


def _lower_keys(headers: Any) -> dict[str, str]:
    return {str(key).lower(): str(value) for key, value in headers.items()}


# ------------------------------------------------------------------------------------ HTTP answers


@dataclass(frozen=True, slots=True)
class Request:
    """What a REST callback receives, with defaults for what Orthanc leaves out."""

    method: str
    groups: tuple[str, ...] = ()
    get: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def group(self) -> str:
        """The first group of the route's pattern (the resource id, for most routes)."""
        return self.groups[0] if self.groups else ""

    @classmethod
    def from_callback(cls, request: Mapping[str, Any]) -> Request:
        body = request.get("body") or b""
        return cls(
            method=str(request.get("method", "")),
            groups=tuple(str(group or "") for group in request.get("groups") or ()),
            get=dict(request.get("get") or {}),
            headers=dict(request.get("headers") or {}),
            body=body if isinstance(body, bytes) else str(body).encode(),
        )


@dataclass(frozen=True, slots=True)
class Response:
    """What to answer; `send` turns it into calls on Orthanc's output object."""

    status: int
    body: bytes = b""
    content_type: str = JSON_MIME
    headers: Mapping[str, str] = field(default_factory=dict)
    allow: str | None = None  # for 405


Handler = Callable[[Request], Response]


def json_response(status: int, value: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(status, json.dumps(value, indent=2).encode(), JSON_MIME, dict(headers or {}))


def error_response(status: int, message: str, **details: Any) -> Response:
    """A JSON error shaped like Orthanc's own, plus `details` (e.g. the resource id)."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    body = {"HttpError": phrase, "HttpStatus": status, "Message": message, **details}
    return json_response(status, body)


def method_not_allowed(allowed: str) -> Response:
    return Response(405, allow=allowed)


def _status_two_arguments(output: Any, status: int, body: bytes) -> None:
    output.SendHttpStatus(status, body)  # plugin 4.2 and later


def _status_with_size(output: Any, status: int, body: bytes) -> None:
    output.SendHttpStatus(status, body.decode(), len(body))  # plugin 4.0/4.1: text plus its size


def _status_text(output: Any, status: int, body: bytes) -> None:
    output.SendHttpStatus(status, body.decode())


_STATUS_FORMS = (_status_two_arguments, _status_with_size, _status_text)
_status_form = [0]  # the form this process's Orthanc accepted last (probed on first use)


def send(output: Any, response: Response, *, core_labels_status_bodies: bool = False) -> None:
    """Answer through Orthanc's RestOutput, whatever the version of the Python plugin.

    With `core_labels_status_bodies` (Orthanc 1.12.2+), an error body keeps the `text/plain`
    label Orthanc gives it, rather than carrying two `Content-Type` headers; it is JSON either way.
    """
    if response.status == 405:
        output.SendMethodNotAllowed(response.allow or "GET")
        return
    for key, value in response.headers.items():
        output.SetHttpHeader(key, value)
    if response.status == 200:
        output.AnswerBuffer(response.body, response.content_type)
    elif not response.body:
        output.SendHttpStatusCode(response.status)  # e.g. 304: no body
    else:
        if not core_labels_status_bodies:
            output.SetHttpHeader("Content-Type", response.content_type)
        _send_status_with_body(output, response.status, response.body)


def _send_status_with_body(output: Any, status: int, body: bytes) -> None:
    # The bindings refuse a wrong signature with TypeError before anything is sent, so the next
    # form can be tried on the same output; the one that works is kept for later answers.
    first = _status_form[0]
    order = [first, *(index for index in range(len(_STATUS_FORMS)) if index != first)]
    refusal: TypeError | None = None
    for index in order:
        try:
            _STATUS_FORMS[index](output, status, body)
        except TypeError as error:
            refusal = refusal or error
            continue
        _status_form[0] = index
        return
    assert refusal is not None
    raise refusal


def rest_callback(handler: Handler, host: OrthancHost, plugin_name: str) -> Callable[..., None]:
    """Orthanc's REST callback around `handler`: whatever fails, the client gets JSON, not a 500.

    Orthanc unavailable or refusing an internal call answers 502; anything unexpected 503. The
    details go to Orthanc's log, never into the answer (they may name internal paths).
    """

    def callback(output: Any, uri: str, **request: Any) -> None:
        try:
            response = handler(Request.from_callback(request))
        except NotFound:
            response = error_response(404, "Unknown resource")
        except HostError as failure:
            host.log_warning(f"{plugin_name}: {request.get('method')} {uri}: {failure}")
            response = error_response(502, "Orthanc could not answer an internal request")
        except Exception as failure:
            host.log_error(f"{plugin_name}: {request.get('method')} {uri}: {failure!r}")
            response = error_response(503, f"{plugin_name} cannot answer now; see Orthanc's log")
        send(output, response, core_labels_status_bodies=host.core_labels_status_bodies)

    return callback


def status_handler(
    snapshot: Callable[[], Mapping[str, Any]], ready: Callable[[], bool] | None = None
) -> Handler:
    """A GET-only JSON status route; 503 (with the same JSON) while `ready()` is false."""

    def handle(request: Request) -> Response:
        if request.method != "GET":
            return method_not_allowed("GET")
        body = dict(snapshot())
        return json_response(200 if ready is None or ready() else 503, body)

    return handle


# ------------------------------------------------------------------------------ background thread

# Background work can wait a little, storing cannot: with a higher nice value a worker gives the
# CPU to Orthanc's store threads whenever both want it, and still runs at once on an idle machine.
# (At 19 a worker holding Orthanc's index lock stalls stores: 10 is the measured compromise.)
WORKER_NICENESS = 10


def lower_own_priority(niceness: int = WORKER_NICENESS) -> None:
    """Raise the calling thread's nice value; a no-op where threads cannot have their own."""
    if niceness <= 0 or not hasattr(os, "setpriority"):
        return
    with contextlib.suppress(OSError):  # not permitted here: run at normal priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)


class BackgroundThread:
    """One daemon thread doing a plugin's work off Orthanc's threads.

    Started on ORTHANC_STARTED (Orthanc's REST API is not usable before), stopped on
    ORTHANC_STOPPED with a bounded wait: `run` must return soon after `stopping` is set.
    """

    def __init__(
        self,
        host: OrthancHost,
        name: str,
        run: Callable[[], None],
        niceness: int = WORKER_NICENESS,
    ) -> None:
        self._host = host
        self._name = name
        self._run = run
        self._niceness = niceness
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.stopping = threading.Event()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread once; later calls do nothing."""
        with self._lock:
            if self._thread is not None:
                return
            self.stopping.clear()
            self._thread = threading.Thread(target=self._main, name=self._name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float, wake: Callable[[], None] | None = None) -> bool:
        """Ask the thread to end and wait at most `timeout` s; True when it ended."""
        self.stopping.set()
        if wake is not None:
            wake()
        with self._lock:
            thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _main(self) -> None:
        lower_own_priority(self._niceness)
        self._host.name_current_thread(self._name)
        try:
            self._run()
        except Exception as error:
            self._host.log_error(f"{self._name}: the worker thread ended: {error!r}")
