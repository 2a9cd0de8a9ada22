"""No plugin route answers 5xx, whatever the request: property-based fuzzing on a real Orthanc.

Schemathesis generates requests from the OpenAPI document each package ships (valid ones, and
invalid ones for every operation that takes a query, header or body) against one Orthanc running
the three plugins composed. A few instances are stored first, and about half of the requests name
them (or a current ETag), so that the routes get past "unknown resource". A second pass sends
what a document cannot describe: bytes that are not UTF-8 in the path or a header, and JSON
strings that are not valid Unicode. Every answer must:

- not be a 5xx, except a 503 the document declares for that operation (a 502 means that Orthanc
  refused a request the plugin made: Orthanc is healthy here, so that is a plugin bug too);
- when it is an error with a body, be JSON with `HttpStatus` equal to the status (a status
  route's "not ready yet" 503 carries that route's status JSON instead);
- for the generated requests, conform to the document: a declared status, content type, headers
  and body schema (unless Orthanc sent the request to another route, see `reaches_the_route`).

A 503 can hide a crash: a route that failed unexpectedly logs it, so Orthanc's log must hold no
such line at the end. The methods a document does not list must answer 405 naming those it lists.

Generation is derandomized: every run sends the same requests. The number of requests and the
statuses seen per operation are printed and written to `.test-artifacts/route-fuzzing.json`.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import quote_from_bytes, unquote

import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.internal.conjecture import providers as hypothesis_providers
from hypothesis.internal.constants_ast import Constants
from schemathesis import APIOperation, Case, GenerationMode, Response
from schemathesis.core.result import Ok
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from integration.conftest import REPO_ROOT, OrthancFactory
from integration.harness.interfaces import Orthanc
from integration.tests.answers import error_content_type
from integration.tests.test_smoke import ALL_PLUGINS, VALID_CONFIG
from orthanc_fake.dicom import PrivateBlock, make_instance

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# The package whose `openapi.yaml` describes each plugin's routes.
DOCUMENTED_PACKAGES = {
    "dicom-events": "orthanc_dicom_events",
    "series-private-tags": "orthanc_series_private_tags",
    "series-thumbnail": "orthanc_series_thumbnail",
}
# Requests per operation and generation mode (operations without input have a single request),
# and per operation for the bytes no document can describe. About a minute in all.
EXAMPLES = {GenerationMode.POSITIVE: 600, GenerationMode.NEGATIVE: 400}
UNDESCRIBABLE_EXAMPLES = 100
CONFORMANCE_CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# The methods Orthanc hands to a plugin's REST callback.
ORTHANC_METHODS = ("GET", "POST", "PUT", "DELETE")
# What a route logs when it failed unexpectedly (503) or Orthanc refused its request (502).
ROUTE_FAILURE_IN_LOG = re.compile(
    r"(dicom-events|series-private-tags|series-thumbnail): "
    r"((GET|POST|PUT|DELETE) /|unexpected error)|Traceback"
)
# A generated request, and the operation of a document it is generated for.
Request = Case[Any]
Operation = APIOperation[Any, Any, Any, Any]
ARTIFACT = REPO_ROOT / ".test-artifacts" / "route-fuzzing.json"
PRIVATE_GROUP = 0x0055
PRIVATE_CREATOR = "MATTERHORN_Prvt_Tags"  # QueueID (0055,1011) in VALID_CONFIG's dictionary
UID_ROOT = "1.2.826.0.1.3680043.10.1082.71"

# What a request carries: as generated from the document, or one thing no document can describe.
GENERATED = "generated"
PATH_NOT_UTF8 = "path not UTF-8"
HEADER_NOT_UTF8 = "header not UTF-8"
JSON_NOT_UNICODE = "JSON string with a lone surrogate"


@dataclass(frozen=True)
class KnownFinding:
    """A finding not fixed yet. Its own test below is xfail(strict=True): once the fix lands that
    test passes, fails as XPASS, and this entry and the marker go."""

    test: str
    status: int
    kinds: frozenset[str]
    operations: frozenset[str] | None  # None: any operation
    log_line: re.Pattern[str]

    def matches(self, operation: str, kind: str, status: int) -> bool:
        in_scope = self.operations is None or operation in self.operations
        return in_scope and kind in self.kinds and status == self.status


KNOWN_FINDINGS = [
    KnownFinding(
        "test_a_header_that_is_not_utf8_gets_a_4xx_not_500",
        500,
        frozenset({HEADER_NOT_UTF8}),
        None,
        re.compile(r"Cannot create a Python string, check that the string is properly encoded"),
    ),
]


def shipped_document(plugin: str) -> dict[str, Any]:
    text = resources.files(DOCUMENTED_PACKAGES[plugin]).joinpath("openapi.yaml").read_text()
    document: dict[str, Any] = yaml.safe_load(text)
    return document


@dataclass
class KnownResources:
    """What is stored in the Orthanc under test, for requests that name something existing."""

    ids_by_level: dict[str, list[str]]  # "patients", "studies", "series", "instances"
    thumbnail_etags: list[str]

    @property
    def all_ids(self) -> list[str]:
        return [resource for ids in self.ids_by_level.values() for resource in ids]

    def ids_for(self, level: str) -> st.SearchStrategy[str]:
        """Mostly IDs of the level a route names; the others, to name the wrong level."""
        return st.one_of(
            st.sampled_from(self.ids_by_level.get(level) or self.all_ids),
            st.sampled_from(self.all_ids),
        )


def store_examples(server: Orthanc) -> KnownResources:
    """A series of three 16x16 slices with a private tag, and a patient whose only instance has
    no pixel data (its thumbnail is a 415)."""
    answers = []
    for number in range(1, 4):
        private = PrivateBlock(PRIVATE_GROUP, PRIVATE_CREATOR, {0x11: ("UT", f"queue-{number}")})
        slice_ = make_instance(
            "FUZZ-1",
            f"{UID_ROOT}.1",
            f"{UID_ROOT}.1.1",
            f"{UID_ROOT}.1.1.{number}",
            pixels=(16, 16),
            private_blocks=[private],
            InstanceNumber=number,
        )
        answers.append(server.upload_file(slice_))
    without_pixels = make_instance(
        "FUZZ-2", f"{UID_ROOT}.2", f"{UID_ROOT}.2.1", f"{UID_ROOT}.2.1.1"
    )
    answers.append(server.upload_file(without_pixels))
    levels = {
        "patients": "ParentPatient",
        "studies": "ParentStudy",
        "series": "ParentSeries",
        "instances": "ID",
    }
    ids_by_level = {
        level: sorted({answer[key] for answer in answers}) for level, key in levels.items()
    }
    etags = []
    for series_id in ids_by_level["series"]:
        thumbnail = server.client.get(f"/series/{series_id}/thumbnail")
        if "ETag" in thumbnail.headers:
            etags.append(thumbnail.headers["ETag"])
    assert etags, "no thumbnail of the stored series could be rendered"
    return KnownResources(ids_by_level, etags)


# ---------------------------------------------------------------------------------- generation


def can_be_made_invalid(operation: Operation) -> bool:
    """Schemathesis cannot send an invalid path parameter: a query, header or body is needed."""
    return bool(operation.query or operation.headers or operation.body)


def level_named_by(path: str) -> str:
    """ "series" for `/series/{id}/thumbnail`, "patients" for `.../patients/{id}/series`."""
    return path.split("/{id}", 1)[0].rsplit("/", 1)[-1]


def generated_requests(
    operation: Operation, mode: GenerationMode, known: KnownResources
) -> st.SearchStrategy[Request]:
    """Requests as Schemathesis generates them; half of them naming what is stored."""
    generated = operation.as_strategy(generation_mode=mode)

    @st.composite
    def naming_stored_resources(draw: st.DrawFn) -> Request:
        case = draw(generated)
        if case.path_parameters:
            case.path_parameters["id"] = draw(known.ids_for(level_named_by(operation.path)))
        if case.headers and "If-None-Match" in case.headers:
            case.headers["If-None-Match"] = draw(st.sampled_from(["*", *known.thumbnail_etags]))
        if isinstance(case.body, dict):
            case.body = {**case.body, "Series": draw(known.ids_for("series"))}
        return case

    return st.one_of(generated, naming_stored_resources())


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


# Bytes a header value may carry on the wire (no control characters, no leading blank) that are
# not UTF-8.
HEADER_BYTES = st.binary(min_size=1, max_size=12).filter(
    lambda value: _not_utf8(value) and value[0] > 0x20 and not any(b < 0x20 for b in value)
)
PATH_BYTES = st.binary(min_size=1, max_size=12).filter(_not_utf8)
# Text with a lone surrogate, which JSON can carry (`"\udc80"`) and UTF-8 cannot.
NOT_UNICODE_TEXT = st.tuples(
    st.text(max_size=4), st.characters(categories=["Cs"]), st.text(max_size=4)
).map("".join)


@dataclass(frozen=True)
class RawRequest:
    """A request built outside Schemathesis, for what its document cannot describe."""

    case: Request  # the generated request it was made from
    kind: str
    method: str
    path: str
    query: Mapping[str, Any]
    headers: Mapping[str, str | bytes]
    body: bytes | None

    def describe(self) -> str:
        return f"{self.method} {self.path} query={dict(self.query)} headers={dict(self.headers)!r}"


def undescribable_requests(
    operation: Operation, known: KnownResources
) -> st.SearchStrategy[RawRequest]:
    """Valid requests with one part replaced by bytes or text no document can describe."""
    kinds = [HEADER_NOT_UTF8]
    if operation.path_parameters:
        kinds.append(PATH_NOT_UTF8)
    if operation.body:
        kinds.append(JSON_NOT_UNICODE)

    @st.composite
    def build(draw: st.DrawFn) -> RawRequest:
        case = draw(generated_requests(operation, GenerationMode.POSITIVE, known))
        kind = draw(st.sampled_from(kinds))
        path = case.formatted_path
        headers: dict[str, str | bytes] = dict(case.headers or {})
        body = None if not isinstance(case.body, dict) else json.dumps(case.body).encode()
        if kind == PATH_NOT_UTF8:
            path = operation.path.replace("{id}", quote_from_bytes(draw(PATH_BYTES), safe=""))
        elif kind == HEADER_NOT_UTF8:
            name = draw(st.sampled_from(["Accept", "If-None-Match", "X-Request-Note"]))
            headers[name] = draw(HEADER_BYTES)
        else:
            body = json.dumps({"Series": draw(NOT_UNICODE_TEXT)}).encode()  # \uXXXX escapes
        if body is not None:
            headers["Content-Type"] = "application/json"
        return RawRequest(case, kind, case.method, path, case.query or {}, headers, body)

    return build()


# ---------------------------------------------------------------------------------- judging


def reaches_the_route(case: Request) -> bool:
    """False when Orthanc routes the request elsewhere: it reads `\\` in a URI as `/`, ends the
    URI at a NUL and resolves `.` and `..` segments, so a path parameter holding one of those
    names another route, or one of Orthanc's own, which the document does not describe. The
    routes' ID segments are printable ASCII: any other character gets Orthanc's own 404.
    (Schemathesis keeps path parameters percent-encoded.)"""
    decoded = [unquote(str(value)) for value in (case.path_parameters or {}).values()]
    return not any(
        value in (".", "..")
        or any(character in value for character in "/\\\x00")
        or any(not "!" <= character <= "~" for character in value)
        for value in decoded
    )


def broken_rules(case: Request, status: int, content: bytes) -> list[str]:
    """How an answer breaks the rules every route keeps: no undeclared 5xx, JSON errors."""
    problems = []
    if status >= 500 and not (status == 503 and "503" in case.operation.responses.status_codes):
        problems.append(f"{status}: a server error the document does not declare")
    if status >= 400 and status != 405 and content:
        try:
            body = json.loads(content)
        except ValueError:
            return [*problems, "the error body is not JSON"]
        status_route_not_ready = status == 503 and case.path.endswith("/status")
        if not isinstance(body, dict):
            problems.append("the error body is not a JSON object")
        elif body.get("HttpStatus") != status and not status_route_not_ready:
            problems.append(f"HttpStatus {body.get('HttpStatus')!r} in the body of a {status}")
    return problems


def nonconformities(case: Request, response: Response) -> list[str]:
    """How an answer to a generated request departs from the document."""
    if not reaches_the_route(case):
        return []
    try:
        case.validate_response(response, checks=CONFORMANCE_CHECKS)
    except FailureGroup as failures:
        return [f"{failure.title}: {failure.message}" for failure in failures.exceptions]
    return []


def logged_failures(log: str) -> tuple[list[str], Counter[str]]:
    """The route failures Orthanc logged, and how many lines each known finding accounts for."""
    unknown: list[str] = []
    known_lines: Counter[str] = Counter()
    for line in log.splitlines():
        known = next((known for known in KNOWN_FINDINGS if known.log_line.search(line)), None)
        if known is not None:
            known_lines[known.test] += 1
        elif ROUTE_FAILURE_IN_LOG.search(line):
            unknown.append(line)
    return unknown, known_lines


# ---------------------------------------------------------------------------------- the run


@dataclass
class Finding:
    operation: str
    kind: str
    request: str
    status: int
    problems: list[str]
    answer: str


@dataclass
class Tally:
    """The statuses seen per operation, and what broke the rules."""

    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    undescribable: dict[str, Counter[int]] = field(default_factory=dict)
    unlisted_methods: Counter[int] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)
    known_findings: Counter[str] = field(default_factory=Counter)

    @property
    def requests(self) -> int:
        counters = [*self.statuses.values(), *self.undescribable.values(), self.unlisted_methods]
        return sum(sum(counts.values()) for counts in counters)

    def judge(
        self, operation: str, kind: str, request: str, status: int, problems: list[str], answer: str
    ) -> None:
        if not problems:
            return
        for known in KNOWN_FINDINGS:
            if known.matches(operation, kind, status):
                self.known_findings[known.test] += 1
                return
        self.findings.append(Finding(operation, kind, request, status, problems, answer[:500]))

    def as_json(self, seconds: float) -> dict[str, Any]:
        def by_status(counts: Counter[int]) -> dict[str, int]:
            return {str(status): count for status, count in sorted(counts.items())}

        return {
            "requests": self.requests,
            "seconds": round(seconds, 1),
            "statuses": {name: by_status(self.statuses[name]) for name in sorted(self.statuses)},
            "undescribable": {
                name: by_status(self.undescribable[name]) for name in sorted(self.undescribable)
            },
            "unlisted_methods": by_status(self.unlisted_methods),
            "findings": [vars(finding) for finding in self.findings],
            "known_findings": dict(self.known_findings),
        }


def run_examples(cases: st.SearchStrategy[Any], examples: int, send: Callable[[Any], None]) -> None:
    # Nothing raises inside: every answer is judged and recorded, so there is nothing to shrink,
    # and one run reports all its findings.
    @given(case=cases)
    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def run(case: Any) -> None:
        send(case)

    run()


JSON_MIME = "application/json"


def relabel_error_body(response: Response, label: str) -> None:
    """Read the one label Orthanc gives a body sent with a status other than 200 (1.12.2+:
    text/plain: errors, a 202) as the document's JSON.

    Only an answer carrying exactly that one label is relabelled: two `Content-Type` headers
    still fail the document's check. The body itself is judged as JSON either way.
    """
    if response.status_code != 200 and response.headers.get("content-type") == [label]:
        response.headers["content-type"] = [JSON_MIME]


class Fuzzer:
    """Sends the generated requests to one Orthanc and judges every answer."""

    def __init__(self, base_url: str, known: KnownResources, error_label: str) -> None:
        self.base_url = base_url
        self.known = known
        self.session = requests.Session()
        self.tally = Tally()
        self.error_label = error_label

    def fuzz(self, document: dict[str, Any]) -> None:
        for result in schemathesis.openapi.from_dict(document).get_all_operations():
            assert isinstance(result, Ok), result  # the packages' unit tests validate the documents
            operation = result.ok()
            for mode, examples in EXAMPLES.items():
                if mode is GenerationMode.NEGATIVE and not can_be_made_invalid(operation):
                    continue
                cases = generated_requests(operation, mode, self.known)
                run_examples(cases, examples, self._send_generated)
            undescribable = undescribable_requests(operation, self.known)
            run_examples(undescribable, UNDESCRIBABLE_EXAMPLES, self._send_undescribable)

    def _send_generated(self, case: Request) -> None:
        response = case.call(base_url=self.base_url, session=self.session, timeout=30)
        relabel_error_body(response, self.error_label)
        operation = case.operation.label
        self.tally.statuses.setdefault(operation, Counter())[response.status_code] += 1
        problems = broken_rules(case, response.status_code, response.content)
        problems += nonconformities(case, response)
        answer = response.text_lossy()
        self.tally.judge(
            operation, GENERATED, case.as_curl_command(), response.status_code, problems, answer
        )

    def _send_undescribable(self, request: RawRequest) -> None:
        response = self.session.request(
            request.method,
            self.base_url + request.path,
            params=request.query,
            headers=request.headers,
            data=request.body,
            timeout=30,
        )
        operation = request.case.operation.label
        counts = self.tally.undescribable.setdefault(f"{operation} ({request.kind})", Counter())
        counts[response.status_code] += 1
        problems = broken_rules(request.case, response.status_code, response.content)
        self.tally.judge(
            operation,
            request.kind,
            request.describe(),
            response.status_code,
            problems,
            response.content.decode("utf-8", "replace"),
        )

    def probe_unlisted_methods(self, document: dict[str, Any]) -> None:
        """The methods the document does not list for a path answer 405 naming those it lists."""
        series_id = self.known.ids_by_level["series"][0]
        for path, path_item in document["paths"].items():
            listed = {method.upper() for method in path_item if method.upper() in ORTHANC_METHODS}
            uri = path.replace("{id}", series_id)
            for method in sorted(set(ORTHANC_METHODS) - listed):
                response = self.session.request(method, self.base_url + uri, timeout=30)
                self.tally.unlisted_methods[response.status_code] += 1
                allow = set(response.headers.get("Allow", "").split(","))
                if response.status_code != 405 or allow != listed:
                    problem = f"expected 405 with Allow: {','.join(sorted(listed))}"
                    answer = f"Allow: {response.headers.get('Allow')} {response.text}"
                    self.tally.judge(
                        f"{method} {path}",
                        GENERATED,
                        f"{method} {uri}",
                        response.status_code,
                        [problem],
                        answer,
                    )


def publish(report: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    ARTIFACT.parent.mkdir(exist_ok=True)
    ARTIFACT.write_text(json.dumps(report, indent=2) + "\n")

    def line(name: str, counts: dict[str, int]) -> str:
        return f"  {name}: " + " ".join(f"{status}x{count}" for status, count in counts.items())

    lines = [f"route fuzzing: {report['requests']} requests in {report['seconds']:.0f} s"]
    lines += [line(name, counts) for name, counts in report["statuses"].items()]
    lines += [line(name, counts) for name, counts in report["undescribable"].items()]
    lines.append(line("methods not listed", report["unlisted_methods"]))
    for known in KNOWN_FINDINGS:
        answers = report["known_findings"].get(known.test, 0)
        logged = report["known_findings_logged"].get(known.test, 0)
        if answers or logged:
            lines.append(f"  known: {answers} answers, {logged} log lines, see {known.test}")
    lines.append(f"  written to {ARTIFACT.relative_to(REPO_ROOT)}")
    with capsys.disabled():
        print("\n" + "\n".join(lines))


@pytest.fixture
def server(orthanc_factory: OrthancFactory) -> Iterator[Orthanc]:
    yield orthanc_factory(list(ALL_PLUGINS), VALID_CONFIG)


@pytest.fixture
def without_project_literals(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hypothesis mixes literals found in the project's own modules into what it generates, so an
    edit anywhere in the tree would change the requests sent; without them every run of this
    suite sends the same ones. (Hypothesis internals: renamed, the test errors instead.)"""
    monkeypatch.setattr(hypothesis_providers, "_get_local_constants", Constants)
    hypothesis_providers.CONSTANTS_CACHE.cache.clear()


@pytest.mark.usefixtures("without_project_literals")
def test_no_route_answers_5xx_and_every_error_is_json(
    server: Orthanc, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    fuzzer = Fuzzer(server.url, store_examples(server), error_content_type(server))
    for plugin in ALL_PLUGINS:
        document = shipped_document(plugin)
        fuzzer.fuzz(document)
        fuzzer.probe_unlisted_methods(document)
    failures_logged, known_lines = logged_failures(server.log_text())
    report = fuzzer.tally.as_json(time.monotonic() - started)
    report["route_failures_logged"] = failures_logged
    report["known_findings_logged"] = dict(known_lines)
    publish(report, capsys)

    assert not fuzzer.tally.findings, json.dumps(report["findings"][:20], indent=2)
    assert not failures_logged, "\n".join(failures_logged[:20])


# ---------------------------------------------------------------------- findings not fixed yet


def test_series_of_a_patient_or_study_named_by_an_id_of_a_lower_level_is_404(
    server: Orthanc,
) -> None:
    stored = server.upload_file(make_instance(pixels=(16, 16)))
    answers = {
        uri: server.client.get(uri)
        for uri in (
            f"/with-private-tags/patients/{stored['ParentSeries']}/series",
            f"/with-private-tags/patients/{stored['ID']}/series",
            f"/with-private-tags/studies/{stored['ID']}/series",
        )
    }
    assert {uri: answer.status_code for uri, answer in answers.items()} == dict.fromkeys(
        answers, 404
    )
    for answer in answers.values():
        assert answer.json()["HttpStatus"] == 404


def test_a_path_that_is_not_utf8_gets_a_4xx_not_500(server: Orthanc) -> None:
    # The routes match printable ASCII only: such a path never reaches the Python plugin.
    answers = [
        server.client.get("/series/%FF/thumbnail"),
        server.client.get("/with-private-tags/series/%C3"),
        server.client.get("/with-private-tags/patients/%FF/series"),
    ]
    assert all(400 <= answer.status_code < 500 for answer in answers), [
        answer.status_code for answer in answers
    ]


@pytest.mark.xfail(
    strict=True,
    reason="Orthanc's Python plugin answers 500 before any plugin code runs: it turns every "
    "header into a Python string, strictly as UTF-8, for each request to a route a script "
    "registered (a limit of the Python plugin, stated in the packages' READMEs)",
)
def test_a_header_that_is_not_utf8_gets_a_4xx_not_500(server: Orthanc) -> None:
    series = server.upload_file(make_instance(pixels=(16, 16)))["ParentSeries"]
    answers = [
        server.client.get(f"/series/{series}/thumbnail", headers={"Accept": b"image/png\xe9"}),
        server.client.get("/series-thumbnail/status", headers={"X-Request-Note": b"\xff"}),
    ]
    assert all(400 <= answer.status_code < 500 for answer in answers), [
        answer.status_code for answer in answers
    ]


def test_a_series_id_that_is_not_valid_unicode_is_a_400(server: Orthanc) -> None:
    answer = server.client.post(
        "/with-private-tags/reconstruct",
        data=b'{"Series": "\\udc80"}',
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["HttpStatus"] == 400
    assert "UnicodeEncodeError" not in server.log_text()
