import pytest

from orthanc_series_thumbnail.cache import RenderCache, Rendered
from orthanc_series_thumbnail.http_rules import cache_control, matches_if_none_match, negotiate
from orthanc_series_thumbnail.rendering import RenderSpec


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("", "jpeg"),
        ("*/*", "jpeg"),
        ("image/png", "png"),
        ("image/jpeg", "jpeg"),
        ("image/jpeg;q=0.5, image/png", "png"),
        ("image/png;q=0.5, image/jpeg", "jpeg"),
        ("image/png;q=0", "jpeg"),
        ("image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8", "jpeg"),
    ],
)
def test_negotiate(accept: str, expected: str) -> None:
    assert negotiate(accept) == expected


def test_if_none_match() -> None:
    assert matches_if_none_match('"a"', '"a"')
    assert matches_if_none_match('W/"a"', '"a"')
    assert matches_if_none_match("*", '"a"')
    assert not matches_if_none_match('"b", "c"', '"a"')
    assert not matches_if_none_match(None, '"a"')


def test_cache_control_is_private() -> None:
    assert cache_control(0) == "private, no-cache"
    assert cache_control(60) == "private, max-age=60"


def spec(instance: str, size: int = 64) -> RenderSpec:
    return RenderSpec(instance, 0, size, "jpeg", 90)


def test_lru_respects_the_byte_budget_and_recency() -> None:
    cache = RenderCache(max_bytes=300)
    cache.put(spec("a"), Rendered(body=b"x" * 100))
    cache.put(spec("b"), Rendered(body=b"x" * 100))
    assert cache.get(spec("a")) is not None  # a is now the most recent
    cache.put(spec("c"), Rendered(body=b"x" * 150))
    assert cache.get(spec("b")) is None and cache.get(spec("a")) is not None
    assert cache.stats()["Bytes"] <= 300
    cache.put(spec("huge"), Rendered(body=b"x" * 301))
    assert cache.get(spec("huge")) is None


def test_forget_instance_drops_all_its_sizes() -> None:
    cache = RenderCache(max_bytes=10_000)
    for size in (64, 128):
        cache.put(spec("a", size), Rendered(body=b"x"))
    cache.put(spec("b"), Rendered(refusal="no image"))
    cache.forget_instance("a")
    assert cache.stats()["Entries"] == 1
    assert cache.get(spec("b")) == Rendered(refusal="no image")
    cache.put(spec("b"), Rendered(body=b"yy"))
    assert cache.stats()["Bytes"] == 2
