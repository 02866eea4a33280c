from __future__ import annotations

import struct

import pytest

from data.sync.warehouse import (
    RetryPolicy,
    TransientWarehouseError,
    Warehouse,
    WarehouseConfig,
    WarehouseConfigError,
    WarehouseError,
    is_transient,
    redact,
    with_retries,
)


def test_url_config():
    c = WarehouseConfig.from_mapping(
        {"url": "postgresql://sync:p%40ss@wh.example.com:5439/analytics?sslmode=require"}
    )
    assert (c.host, c.port, c.database, c.user, c.password) == (
        "wh.example.com",
        5439,
        "analytics",
        "sync",
        "p@ss",
    )
    assert c.driver == "adbc" and c.sslmode == "require"
    assert "p@ss" not in repr(c) and "p@ss" not in c.describe()


def test_fields_config_and_iam_selects_redshift_connector():
    c = WarehouseConfig.from_mapping(
        {
            "host": "cluster.example.com",
            "database": "analytics",
            "iam": True,
            "cluster_identifier": "c1",
            "region": "eu-west-1",
            "db_user": "sync",
        }
    )
    assert c.driver == "redshift_connector"
    assert c.options == {
        "iam": True,
        "cluster_identifier": "c1",
        "region": "eu-west-1",
        "db_user": "sync",
    }


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "No warehouse is configured"),
        ({"url": "mysql://x@h/db"}, "must look like postgresql://user:password@host"),
        ({"url": "not a url at all"}, "it starts with no scheme"),
        ({"url": "postgresql://u@h:port/db"}, "port must be a whole number"),
        ({"url": "postgresql://u@h:99999/db"}, "port must be a whole number"),
        ({"url": "postgresql://u@h/db?connect_timeout=soon"}, "connect_timeout must be a whole"),
        ({"url": "postgresql://u@h/"}, "needs a database"),
        ({"host": "h", "database": "d", "connect_timeout": "x"}, "connect_timeout must be a"),
        ({"host": "h", "database": "d", "statement_timeout": "-1"}, "must not be negative"),
        ({"host": "h"}, "needs a database"),
        ({"host": "h", "database": "d", "driver": "odbc"}, "driver must be one of"),
        ({"host": "h", "database": "d", "schema": "x; drop"}, "plain identifier"),
        ({"host": "h", "database": "d", "iam": True, "driver": "adbc"}, "need driver"),
        ({"host": "h", "database": "d", "region": "eu"}, "options the adbc driver does not use"),
    ],
)
def test_bad_config_is_a_clear_error(config, message):
    with pytest.raises(WarehouseConfigError, match=message):
        WarehouseConfig.from_mapping(config)


def test_redact_removes_passwords_in_every_spelling():
    text = "connect postgresql://u:s3cr%2Ft@h/db failed; password=s3cr/t; password: 'x y'"
    out = redact(text, "s3cr/t")
    assert "s3cr" not in out and "x y" not in out


def test_connection_refused_is_transient_and_names_no_password():
    # A real connection attempt to a port nobody listens on.
    wh = Warehouse.from_mapping(
        {"url": "postgresql://sync:hunter2-password@127.0.0.1:1/db?connect_timeout=2"},
        RetryPolicy(attempts=2, base_delay=0.01),
    )
    with pytest.raises(TransientWarehouseError) as info:
        wh.ping()
    assert "hunter2" not in str(info.value)
    assert "gave up after 2 attempts" in str(info.value)


def test_only_transient_errors_are_retried():
    calls = []

    def flaky(attempt):
        calls.append(attempt)
        if attempt < 3:
            raise TransientWarehouseError("connection reset")
        return "done"

    pauses = []
    assert with_retries(flaky, RetryPolicy(attempts=4, base_delay=1), sleep=pauses.append) == "done"
    assert calls == [1, 2, 3]
    assert len(pauses) == 2 and pauses[1] > pauses[0] * 0.9 / 2, "backoff grows"

    def broken(attempt):
        calls.append(attempt)
        raise WarehouseError("permission denied for table fact_view")

    calls.clear()
    with pytest.raises(WarehouseError, match="permission denied"):
        with_retries(broken, RetryPolicy(attempts=4), sleep=pauses.append)
    assert calls == [1], "a permanent error is not retried"


def test_backoff_is_bounded():
    policy = RetryPolicy(attempts=10, base_delay=1, max_delay=5)
    assert all(0.5 <= policy.delay(n) <= 5 for n in range(1, 10))


def test_a_message_cut_short_by_a_dropped_connection_is_transient():
    # What redshift_connector raises when the socket closes in the middle of a message.
    try:
        struct.unpack("!i", b"\x00\x00")
    except struct.error as exc:
        cut = exc
    assert is_transient(cut)
    assert not is_transient(ValueError("a bad value is not a connection problem"))
