"""Names and keys that would mislead later (as file names, in terminals) are refused."""

from __future__ import annotations

import pytest

import prefect_mlops as mlops
from prefect_mlops import InvalidInput


@pytest.mark.parametrize("key", ["../x", "a/../b", "/abs", "a//b", "a/", "./a", ".", "a/."])
def test_path_like_keys_are_refused(client: mlops.TrackingClient, key: str) -> None:
    exp = client.create_experiment("keys")
    run = client.create_run(exp)
    with pytest.raises(InvalidInput, match="resolves to") as raised:
        client.log_metric(run.info.run_id, key, 1.0)
    assert repr(key) in str(raised.value)
    with pytest.raises(InvalidInput, match="resolves to"):
        client.log_param(run.info.run_id, key, 1)
    with pytest.raises(InvalidInput, match="resolves to"):
        client.set_tag(run.info.run_id, key, "v")
    client.flush()
    assert client.get_run(run.info.run_id).data.metrics == {}


@pytest.mark.parametrize("key", ["val/loss", "a.b", "a..b", "x-y_z 1", "deep/er/key"])
def test_ordinary_keys_pass(client: mlops.TrackingClient, key: str) -> None:
    run = client.create_run(client.create_experiment("ok"))
    client.log_metric(run.info.run_id, key, 2.0)
    assert client.get_run(run.info.run_id).data.metrics == {key: 2.0}


@pytest.mark.parametrize("name", ["two\nlines", "tab\there", "bell\x07", "del\x7f"])
def test_names_with_control_characters_are_refused(client: mlops.TrackingClient, name: str) -> None:
    with pytest.raises(InvalidInput, match="control character") as raised:
        client.create_experiment(name)
    assert repr(name) in str(raised.value)
    exp = client.create_experiment("fine")
    with pytest.raises(InvalidInput, match="control character"):
        client.create_run(exp, run_name=name)
    assert [e.name for e in client.search_experiments()] == ["fine"]
