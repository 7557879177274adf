"""`chat-archiver`: the command line (DESIGN §3.2)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from archiver.errors import CommandError
from archiver.settings import load_settings, parse_instant
from storage.ddl import DIALECTS
from storage.errors import ArchiverError, ErrorKind, one_line
from storage.lifecycle import STATES, WindowState
from storage.redaction import add_secret, redact

# What a command exits with when it stops on an error of each kind (README, "Exit codes").
EXIT_CODES = {ErrorKind.USER: 2, ErrorKind.TRANSIENT: 3, ErrorKind.PERMANENT: 1}


def _instant(text: str) -> object:
    try:
        return parse_instant(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chat-archiver",
        description="Archives chat messages from the export API into Parquet on S3 or disk.",
    )
    parser.add_argument("--config", type=Path, help="a TOML file of settings (see README)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("serve", help="run the receiver, the scheduler and the worker")
    demo = commands.add_parser("demo", help="archive a few days from a local simulator, end to end")
    demo.add_argument("--days", type=int, default=3, help="how many days to archive (default 3)")
    demo.add_argument("--archive", type=Path, default=Path("archive"), help="where to write")

    export = commands.add_parser("export", help="request the windows of a period now")
    export.add_argument("--start", type=_instant, required=True, metavar="T")
    export.add_argument("--end", type=_instant, required=True, metavar="T")
    export.add_argument(
        "--replace",
        action="store_true",
        help="replace the windows of another length this period overlaps",
    )

    backfill = commands.add_parser("backfill", help="request every missing window and wait")
    backfill.add_argument("--since", type=_instant, required=True, metavar="T")
    backfill.add_argument(
        "--until", type=_instant, metavar="T", help="default: the end of the last finished window"
    )
    backfill.add_argument("--force", action="store_true", help="re-export committed windows too")
    backfill.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="give up waiting after this long (default: wait)",
    )

    status = commands.add_parser("status", help="windows by state, lag and problems")
    status.add_argument("--json", action="store_true", help="machine-readable output")

    windows = commands.add_parser("windows", help="list windows, by state and start")
    windows.add_argument(
        "--state",
        action="append",
        choices=[state.value for state in STATES],
        metavar="S",
        help=f"only windows in this state (repeatable): {', '.join(STATES)}",
    )
    windows.add_argument("--since", type=_instant, metavar="T", help="starting at or after T")
    windows.add_argument("--json", action="store_true", help="machine-readable output")

    replay = commands.add_parser("replay", help="decode stored raw callbacks again")
    target = replay.add_mutually_exclusive_group(required=True)
    target.add_argument("export_id", nargs="?", metavar="EXPORT_ID")
    target.add_argument("--quarantined", action="store_true", help="every quarantined window")
    replay.add_argument(
        "--accept-shrink",
        action="store_true",
        help="commit EXPORT_ID although it has far fewer rows than the window it replaces",
    )

    verify = commands.add_parser("verify", help="check the archive as a table, and its objects")
    verify.add_argument("--since", type=_instant, metavar="T")
    verify.add_argument(
        "--source",
        action="store_true",
        help="also read archived chats back from the platform and compare",
    )
    verify.add_argument(
        "--sample", type=int, default=20, metavar="N", help="chats to read back (default 20)"
    )

    ddl = commands.add_parser("ddl", help="print the statements that expose the archive")
    ddl.add_argument("--dialect", choices=DIALECTS, required=True)
    ddl.add_argument("--table", default="chat_messages")

    prune = commands.add_parser(
        "prune-raw", help="delete raw objects older than ARCHIVER_RAW_RETENTION"
    )
    prune.add_argument("--dry-run", action="store_true", help="count, delete nothing")

    commands.add_parser("check", help="check configuration, ledger, bucket and API key")
    commands.add_parser(
        "maintain", help="expire old Iceberg snapshots and delete files nothing references"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = _dispatch(args)
        # Flushed here, so a reader that went away is seen below, not at interpreter exit.
        sys.stdout.flush()
        return code
    except ArchiverError as error:
        print(redact(f"chat-archiver: error: {one_line(error)}"), file=sys.stderr)
        return EXIT_CODES[error.kind]
    except KeyboardInterrupt:
        print("chat-archiver: interrupted; run the command again to continue", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`status | head`): not an error of ours. Point stdout at devnull
        # so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from archiver.commands.demo import run_demo

        return run_demo(days=args.days, archive=args.archive)
    settings = load_settings(config_file=args.config)
    add_secret(settings.api_key)
    if args.command == "serve":
        from archiver.commands.serve import serve

        return serve(settings)
    if args.command in ("export", "backfill"):
        from archiver.commands import requests

        if args.command == "export":
            return requests.export(settings, args.start, args.end, replace=args.replace)
        return requests.backfill(settings, args.since, args.until, args.force, args.timeout)
    if args.command == "status":
        from archiver.commands.status import status

        return status(settings, as_json=args.json)
    if args.command == "windows":
        from archiver.commands.windows import list_windows

        states = [WindowState(state) for state in args.state] if args.state else None
        return list_windows(settings, states=states, since=args.since, as_json=args.json)
    if args.command == "replay":
        from archiver.commands.replay import replay

        if args.accept_shrink and args.export_id is None:
            raise CommandError("--accept-shrink needs the EXPORT_ID whose rows to accept")
        return replay(
            settings,
            export_id=args.export_id,
            quarantined=args.quarantined,
            accept_shrink=args.accept_shrink,
        )
    if args.command == "verify":
        from archiver.commands.verify import verify

        return verify(settings, since=args.since, source=args.source, sample=args.sample)
    if args.command == "ddl":
        from archiver.commands.archive import ddl

        return ddl(settings, dialect=args.dialect, table=args.table)
    if args.command == "maintain":
        from archiver.commands.maintain import maintain

        return maintain(settings)
    if args.command == "prune-raw":
        from archiver.commands.archive import prune_raw_command

        return prune_raw_command(settings, dry_run=args.dry_run)
    if args.command == "check":
        from archiver.commands.check import check

        return check(settings)
    raise CommandError(f"unknown command {args.command!r}")


if __name__ == "__main__":
    sys.exit(main())
