"""`chat-archiver`: the command line.

Exit codes (README, "Exit codes"): 0 success, 1 a check found problems, 2 bad settings or
arguments, 3 a dependency failed, 130 interrupted; a closed output pipe (`| head`) ends with 0.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from archiver.errors import CommandError
from archiver.settings import load, parse_instant
from archiver.version import version
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


_FORMATTER = argparse.RawDescriptionHelpFormatter


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _common(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """--config and --strict, accepted before the command and after it."""
    default: object = None if top else argparse.SUPPRESS
    parser.add_argument(
        "--config",
        type=Path,
        default=default,
        metavar="FILE",
        help="a TOML file of settings; the environment wins over it (e.g. --config archiver.toml)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="stop on unknown ARCHIVER_* variables or config keys instead of warning",
    )


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
    *examples: str,
) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        name,
        help=help_text,
        description=help_text[0].upper() + help_text[1:] + ".",
        epilog=_examples(*examples),
        formatter_class=_FORMATTER,
    )
    _common(parser)
    return parser


def _json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document instead of text (for scripts)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chat-archiver",
        description="Archives chat messages from the export API into Parquet on S3 or disk.",
        epilog=_examples(
            "chat-archiver demo",
            "chat-archiver check --public-url",
            "chat-archiver serve",
            "chat-archiver backfill --since 2026-01-01",
            "chat-archiver status --config /etc/chat-archiver.toml",
        ),
        formatter_class=_FORMATTER,
    )
    parser.add_argument("--version", action="version", version=f"chat-archiver {version()}")
    _common(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _command(
        commands, "serve", "run the receiver, the scheduler and the worker", "chat-archiver serve"
    )

    demo = _command(
        commands,
        "demo",
        "archive a few days from a local simulator, end to end, with no configuration",
        "chat-archiver demo",
        "chat-archiver demo --days 1 --archive /tmp/demo-archive",
    )
    demo.add_argument(
        "--days", type=int, default=3, help="how many days to archive (default 3; e.g. --days 1)"
    )
    demo.add_argument(
        "--archive",
        type=Path,
        default=Path("archive"),
        metavar="DIR",
        help="where to write (default ./archive; e.g. --archive /tmp/demo)",
    )

    export = _command(
        commands,
        "export",
        "request the windows of a period now, committed ones too",
        "chat-archiver export --start 2026-01-30 --end 2026-01-31",
        "chat-archiver export --start 2026-01-30T06:00:00Z --end 2026-01-30T12:00:00Z",
    )
    export.add_argument(
        "--start",
        type=_instant,
        required=True,
        metavar="T",
        help="ISO date or UTC date-time; its window is the first (e.g. 2026-01-30)",
    )
    export.add_argument(
        "--end",
        type=_instant,
        required=True,
        metavar="T",
        help="ISO date or date-time, not in the future; exclusive (e.g. 2026-01-31)",
    )
    export.add_argument(
        "--replace",
        action="store_true",
        help="replace the windows of another length this period overlaps (after a change of "
        "ARCHIVER_WINDOW)",
    )

    backfill = _command(
        commands,
        "backfill",
        "request every missing window of a period and wait for them",
        "chat-archiver backfill --since 2025-01-01",
        "chat-archiver backfill --since 2026-01-01 --until 2026-02-01 --force --timeout 3600",
    )
    backfill.add_argument(
        "--since",
        type=_instant,
        required=True,
        metavar="T",
        help="ISO date or UTC date-time to start from (e.g. 2025-01-01)",
    )
    backfill.add_argument(
        "--until",
        type=_instant,
        metavar="T",
        help="where to stop, exclusive (default: now minus ARCHIVER_SETTLE_DELAY, at a window "
        "boundary; e.g. 2026-02-01)",
    )
    backfill.add_argument(
        "--force", action="store_true", help="re-export committed windows too (edited messages)"
    )
    backfill.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="give up waiting after this long, exit 1 (default: wait; e.g. --timeout 3600)",
    )
    _json_option(backfill)

    status = _command(
        commands,
        "status",
        "windows by state, lag and problems",
        "chat-archiver status",
        "chat-archiver status --json | jq .problems",
    )
    _json_option(status)

    windows = _command(
        commands,
        "windows",
        "list windows, by state and start",
        "chat-archiver windows --state failed --state quarantined",
        "chat-archiver windows --since 2026-01-01 --json",
    )
    windows.add_argument(
        "--state",
        action="append",
        choices=[state.value for state in STATES],
        metavar="S",
        help=f"only windows in this state (repeatable): {', '.join(STATES)}",
    )
    windows.add_argument(
        "--since", type=_instant, metavar="T", help="starting at or after T (e.g. 2026-01-01)"
    )
    _json_option(windows)

    replay = _command(
        commands,
        "replay",
        "decode stored raw callbacks again",
        "chat-archiver replay 3f2a9c...   (an export id from `status`)",
        "chat-archiver replay --quarantined",
        "chat-archiver replay 3f2a9c... --accept-shrink",
    )
    target = replay.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "export_id", nargs="?", metavar="EXPORT_ID", help="the export whose callbacks to decode"
    )
    target.add_argument(
        "--quarantined", action="store_true", help="every quarantined window's callbacks"
    )
    replay.add_argument(
        "--accept-shrink",
        action="store_true",
        help="commit EXPORT_ID although it has far fewer rows than the window it replaces",
    )

    verify = _command(
        commands,
        "verify",
        "check the archive as a table, and its objects",
        "chat-archiver verify",
        "chat-archiver verify --since 2026-01-01 --source --sample 50",
    )
    verify.add_argument(
        "--since",
        type=_instant,
        metavar="T",
        help="only windows starting at or after T (e.g. 2026-01-01)",
    )
    verify.add_argument(
        "--source",
        action="store_true",
        help="also read archived chats back from the platform and compare",
    )
    verify.add_argument(
        "--sample",
        type=int,
        default=20,
        metavar="N",
        help="chats to read back with --source (default 20; e.g. --sample 50)",
    )

    ddl = _command(
        commands,
        "ddl",
        "print the statements that expose the archive to a warehouse",
        "chat-archiver ddl --dialect athena",
        "chat-archiver ddl --dialect duckdb --table messages",
    )
    ddl.add_argument(
        "--dialect", choices=DIALECTS, required=True, help="the warehouse (e.g. --dialect trino)"
    )
    ddl.add_argument(
        "--table",
        default="chat_messages",
        help="the table name to create (default chat_messages; e.g. --table messages)",
    )

    prune = _command(
        commands,
        "prune-raw",
        "delete raw objects older than ARCHIVER_RAW_RETENTION",
        "chat-archiver prune-raw --dry-run",
        "chat-archiver prune-raw",
    )
    prune.add_argument("--dry-run", action="store_true", help="count, delete nothing")

    _command(
        commands,
        "maintain",
        "expire old Iceberg snapshots and delete files nothing references",
        "chat-archiver maintain",
    )

    check = _command(
        commands,
        "check",
        "check configuration, ledger, bucket, API URL and key, one line each",
        "chat-archiver check",
        "chat-archiver check --public-url --json",
    )
    check.add_argument(
        "--public-url",
        action="store_true",
        help="also POST a probe through ARCHIVER_PUBLIC_URL to /callbacks, as the platform "
        "would (needs `serve` running behind it)",
    )
    _json_option(check)

    config = _command(
        commands,
        "config",
        "show the effective settings and where each came from",
        "chat-archiver config show",
        "chat-archiver config show --json --config archiver.toml",
    )
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    show = config_commands.add_parser(
        "show",
        help="every setting, its value (secrets masked) and its source",
        description="Every setting, its value (secrets masked) and its source.",
        epilog=_examples("chat-archiver config show"),
        formatter_class=_FORMATTER,
    )
    _common(show)
    _json_option(show)
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


def _warn(warnings: list[str]) -> None:
    for warning in warnings:
        print(f"chat-archiver: warning: ignored: {warning}", file=sys.stderr)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from archiver.commands.demo import run_demo

        return run_demo(days=args.days, archive=args.archive)
    loaded = load(config_file=args.config, strict=args.strict)
    settings = loaded.settings
    add_secret(settings.api_key)
    if args.command == "check":
        from archiver.commands.check import check

        return check(
            settings, warnings=loaded.warnings, public_url=args.public_url, as_json=args.json
        )
    _warn(loaded.warnings)
    if args.command == "config":
        from archiver.commands.config import show

        return show(settings, loaded.raw, as_json=args.json)
    if args.command == "serve":
        from archiver.commands.serve import serve

        return serve(settings)
    if args.command in ("export", "backfill"):
        from archiver.commands import requests

        if args.command == "export":
            return requests.export(settings, args.start, args.end, replace=args.replace)
        return requests.backfill(
            settings, args.since, args.until, args.force, args.timeout, as_json=args.json
        )
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
    raise CommandError(f"unknown command {args.command!r}")


if __name__ == "__main__":
    sys.exit(main())
