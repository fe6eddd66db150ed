"""The arithmetic of the per-client token buckets (shared/store/rate.py); the store itself is tested
against the embedded AWS in tests/integration/test_rate_limits.py."""

from shared.store.rate import Bucket, _Kept


def test_the_interval_is_a_minute_over_the_rate_in_whole_milliseconds():
    assert Bucket(per_minute=60, burst=1).interval_ms == 1000
    assert Bucket(per_minute=7, burst=1).interval_ms == 8571
    assert Bucket(per_minute=10_000_000, burst=1).interval_ms == 1  # never 0: `tat` always moves


def test_a_request_waits_until_the_bucket_has_a_token():
    bucket = Bucket(per_minute=60, burst=3)  # a token a second, three at most
    now = 1_000_000
    assert bucket.wait_ms(tat=now - 5000, now_ms=now) == 0  # idle: full
    assert bucket.wait_ms(tat=now + 2000, now_ms=now) == 0  # two taken, one left
    assert bucket.wait_ms(tat=now + 3000, now_ms=now) == 1000  # three taken: the next in a second
    assert bucket.wait_ms(tat=now + 3500, now_ms=now) == 1500


def test_a_container_forgets_the_oldest_clients_first():
    kept = _Kept(most=2)
    kept.put("a", 1)
    kept.put("b", 2)
    kept.put("a", 3)  # put again: now the newest
    kept.put("c", 4)
    assert (kept.get("a"), kept.get("b"), kept.get("c")) == (3, None, 4)
