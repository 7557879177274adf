"""`python -m simulator`: the fake chat platform as a standalone server."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

import uvicorn

from simulator.app import create_app
from simulator.config import CALLBACK_SHAPES, CSV_HEADERS, SimulatorConfig


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, SimulatorConfig]:
    parser = argparse.ArgumentParser(
        prog="python -m simulator",
        description="A fake of the chat platform's export API, with fault injection.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--api-key", default="sim-key", help="the key expected in authorization")
    parser.add_argument("--seed", type=int, default=7, help="the corpus seed")
    parser.add_argument("--messages-per-day", type=int, default=500)
    parser.add_argument("--chats", type=int, default=40)
    parser.add_argument(
        "--allow-insecure-callbacks", action="store_true", help="accept http callback URLs"
    )
    parser.add_argument("--callback-shape", choices=CALLBACK_SHAPES, default="link-ndjson-gz")
    parser.add_argument("--callback-delay", type=float, default=0.2, help="seconds")
    parser.add_argument("--csv-header", choices=CSV_HEADERS, default="labels")
    parser.add_argument("--public-url", help="base URL of file links (default: as requested)")
    parser.add_argument("--link-ttl", type=float, default=3600.0, help="seconds")
    parser.add_argument("--file-dir", help="where export files go (default: a temp directory)")
    parser.add_argument("--duplicate-callbacks", type=int, default=0)
    parser.add_argument(
        "--faults",
        type=json.loads,
        default={},
        help="more faults as JSON, e.g. '{\"expire_links\": true}'",
    )
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    fault_fields = {"drop_callbacks", "fail_export_requests", "failure_notices", "expire_links"}
    unknown = set(args.faults) - fault_fields
    if unknown:
        parser.error(f"--faults: unknown switches {sorted(unknown)}; use {sorted(fault_fields)}")
    try:
        config = SimulatorConfig(
            api_key=args.api_key,
            seed=args.seed,
            messages_per_day=args.messages_per_day,
            chats=args.chats,
            allow_insecure_callbacks=args.allow_insecure_callbacks,
            callback_shape=args.callback_shape,
            callback_delay=args.callback_delay,
            csv_header=args.csv_header,
            public_url=args.public_url,
            link_ttl=args.link_ttl,
            file_dir=args.file_dir,
            duplicate_callbacks=args.duplicate_callbacks,
            **args.faults,
        )
    except ValueError as error:
        parser.error(str(error))
    return args, config


def main(argv: Sequence[str] | None = None) -> None:
    args, config = parse_args(argv)
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
