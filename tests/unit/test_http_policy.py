"""The shared HTTP policy: classification, retries, Retry-After, redaction (with `responses`)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import requests
import responses

from connector.errors import AuthenticationError, RejectedError, RetryableError, UncertainError
from connector.http import CallCounts, HttpClient, RetryPolicy, parse_retry_after
from connector.ratelimit import TokenBucket
from connector.redact import Redactor

BASE = "https://api.example.test"


def client(**kwargs: object) -> HttpClient:
    sleeps: list[float] = []
    policy = RetryPolicy(max_attempts=3, sleep=sleeps.append)
    made = HttpClient(BASE, name="test", retry=policy, **kwargs)  # type: ignore[arg-type]
    made.sleeps = sleeps  # type: ignore[attr-defined]
    return made


@responses.activate
def test_429_with_retry_after_is_retried_after_the_pause() -> None:
    responses.get(f"{BASE}/x", status=429, headers={"Retry-After": "7"})
    responses.get(f"{BASE}/x", json={"ok": True})
    c = client()
    assert c.request("GET", "/x").json() == {"ok": True}
    assert c.sleeps == [7]  # type: ignore[attr-defined]


@responses.activate
def test_429_without_retry_after_backs_off() -> None:
    responses.get(f"{BASE}/x", status=429)
    responses.get(f"{BASE}/x", json={})
    c = client()
    c.request("GET", "/x")
    assert len(c.sleeps) == 1 and 0 <= c.sleeps[0] <= 30  # type: ignore[attr-defined]


@responses.activate
def test_a_daily_limit_pause_parks_instead_of_waiting() -> None:
    responses.get(f"{BASE}/x", status=429, headers={"Retry-After": "64800"})
    c = client()
    with pytest.raises(RetryableError) as caught:
        c.request("GET", "/x")
    assert caught.value.park and caught.value.retry_after == 64800
    assert c.sleeps == []  # type: ignore[attr-defined]


@responses.activate
def test_5xx_on_a_read_is_retried_then_fails_retryable() -> None:
    for _ in range(3):
        responses.get(f"{BASE}/x", status=503)
    with pytest.raises(RetryableError):
        client().request("GET", "/x")
    assert len(responses.calls) == 3


@responses.activate
def test_5xx_on_a_write_is_uncertain_and_not_retried() -> None:
    responses.post(f"{BASE}/invoice", status=502)
    with pytest.raises(UncertainError):
        client().request("POST", "/invoice", json={})
    assert len(responses.calls) == 1


@responses.activate
def test_read_timeout_on_a_write_is_uncertain() -> None:
    responses.post(f"{BASE}/invoice", body=requests.ReadTimeout("slow"))
    with pytest.raises(UncertainError):
        client().request("POST", "/invoice", json={})


@responses.activate
def test_connection_refused_is_retryable_even_for_writes() -> None:
    responses.post(f"{BASE}/invoice", body=requests.ConnectionError("Failed to establish a new connection"))
    with pytest.raises(RetryableError):
        client().request("POST", "/invoice", json={})


@responses.activate
def test_4xx_is_rejected_with_the_provider_message_and_correlation_id() -> None:
    responses.post(
        f"{BASE}/invoice", status=400, json={"message": "Customer unknown"}, headers={"X-Request-Id": "req-9"}
    )
    with pytest.raises(RejectedError) as caught:
        client().request("POST", "/invoice", json={})
    assert "Customer unknown" in str(caught.value) and caught.value.correlation_id == "req-9"


@responses.activate
def test_401_is_an_authentication_error() -> None:
    responses.get(f"{BASE}/x", status=401)
    with pytest.raises(AuthenticationError):
        client().request("GET", "/x")


@responses.activate
def test_secrets_are_redacted_from_errors_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    redactor = Redactor()
    redactor.add("s3cr3t-token-value")
    responses.get(f"{BASE}/x", status=400, body="bad token s3cr3t-token-value")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(RejectedError) as caught:
        HttpClient(BASE, name="t", redactor=redactor, retry=RetryPolicy(sleep=lambda s: None)).request(
            "GET", "/x", params={"access_token": "s3cr3t-token-value"}
        )
    assert "s3cr3t" not in str(caught.value)
    assert "s3cr3t" not in caplog.text


def test_retry_after_accepts_an_http_date() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("soon") is None


def test_token_bucket_allows_a_burst_then_paces() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(rate=10, burst=5, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        assert bucket.acquire() == 0
    bucket.acquire()
    assert slept and abs(sum(slept) - 0.1) < 1e-9


def test_sinks_on_one_provider_account_share_one_budget() -> None:
    from connector.ratelimit import account_budget

    first = account_budget(("xero", "https://x", "tenant-1"), concurrency=5, per_minute=60)
    second = account_budget(("xero", "https://x", "tenant-1"), concurrency=5, per_minute=60)
    other = account_budget(("xero", "https://x", "tenant-2"), concurrency=5, per_minute=60)
    assert first[0] is second[0] and first[1] is second[1]
    assert other[0] is not first[0]


def test_a_relative_secret_file_is_read_from_the_config_folder(tmp_path: Path) -> None:
    from connector.secrets import resolve_secret

    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "key").write_text("file-secret-value\n", encoding="utf-8")
    assert resolve_secret(file="secrets/key", key="api_key", base_dir=tmp_path) == "file-secret-value"


def test_the_backoff_is_capped_exponential_with_full_jitter() -> None:
    from tenacity import RetryCallState

    from connector.http import RetryPolicy

    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    for attempt, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)):
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = attempt
        waits = [policy.wait_strategy()(state) for _ in range(200)]
        assert all(0 <= wait <= ceiling for wait in waits)
        assert max(waits) > ceiling / 2  # jittered across the whole range, not fixed


@responses.activate
def test_http_requests_and_429s_count_against_the_adapter_being_worked_for() -> None:
    responses.get(f"{BASE}/x", status=429, headers={"Retry-After": "1"})
    responses.get(f"{BASE}/x", json={})
    client = HttpClient(BASE, name="xero:books", retry=RetryPolicy(sleep=lambda _: None))
    counts = CallCounts()
    with counts.counting("books"):
        client.request("GET", "/x")
    with counts.counting("files"):
        pass
    client.request("GET", "/x")  # outside any counting: not counted
    assert counts.snapshot() == {"books": {"calls": 2, "throttled": 1}, "files": {"calls": 0, "throttled": 0}}
