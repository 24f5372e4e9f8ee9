"""A test run deletes its Celery queues' keys from the shared Redis when it ends, and only its
own: they never expire, and CI uses the machine's Redis as the session left it."""

from __future__ import annotations

import uuid

import pytest
import redis

from tests.conftest import REDIS_URL, forget_run_keys


@pytest.mark.heavy  # the shared Redis
def test_a_runs_own_queue_keys_go_and_another_runs_stay():
    mine = f"furusato-test-{uuid.uuid4().hex[:8]}_gw9"
    other = f"furusato-test-{uuid.uuid4().hex[:8]}_gw9"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for queue in (mine, other):
            client.rpush(queue, "a task nobody ran")
            client.rpush(f"{queue}-webhooks-e2e", "another")
            client.sadd(f"_kombu.binding.{queue}", "a binding")
        assert forget_run_keys(REDIS_URL, mine) == 3
        assert not client.exists(mine, f"{mine}-webhooks-e2e", f"_kombu.binding.{mine}")
        assert client.exists(other, f"{other}-webhooks-e2e", f"_kombu.binding.{other}") == 3
        assert forget_run_keys(REDIS_URL, mine) == 0
    finally:
        client.delete(other, f"{other}-webhooks-e2e", f"_kombu.binding.{other}")
        client.close()


def test_a_redis_that_is_gone_ends_no_run():
    assert forget_run_keys("redis://127.0.0.1:1/0", "furusato-test-x") == 0
