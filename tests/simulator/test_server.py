from __future__ import annotations

import json

import httpx
import pytest

from simulator.__main__ import parse_args
from simulator.config import SimulatorConfig
from simulator.server import running_simulator
from tests.simulator.support import HTTP, CallbackTarget, export


def test_running_simulator_serves_exports_on_a_free_port_and_stops(target: CallbackTarget) -> None:
    config = SimulatorConfig(
        api_key="test-key", allow_insecure_callbacks=True, callback_delay=0, messages_per_day=24
    )
    with running_simulator(config) as url:
        assert url.startswith("http://127.0.0.1:")
        assert export(url, target.callback_url()).status_code == 200
        notice = json.loads(target.wait_for(1)[0].body)
        assert HTTP.get(notice["url"]).status_code == 200
    with pytest.raises(httpx.TransportError):
        HTTP.get(f"{url}/_sim/state")


def test_the_command_line_maps_flags_onto_the_config() -> None:
    args, config = parse_args(
        [
            "--port",
            "8901",
            "--api-key",
            "K",
            "--seed",
            "3",
            "--messages-per-day",
            "1000",
            "--allow-insecure-callbacks",
            "--callback-shape",
            "link-csv",
            "--callback-delay",
            "0.5",
            "--faults",
            '{"expire_links": true}',
        ]
    )
    assert args.port == 8901 and args.host == "127.0.0.1"
    assert (config.api_key, config.seed, config.messages_per_day) == ("K", 3, 1000)
    assert config.allow_insecure_callbacks and config.callback_shape == "link-csv"
    assert config.callback_delay == 0.5 and config.expire_links


def test_the_command_line_refuses_unknown_faults() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--faults", '{"bogus": 1}'])
