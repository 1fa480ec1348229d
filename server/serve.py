"""``ghostwrite serve``: run the language server (stdio, or TCP with one client at a time)."""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

from ghostwrite.model import files
from ghostwrite.training.cli import add_model_argument

LOG_LEVELS = ("debug", "info", "warning", "error")
# Over TCP, a connection that has not sent ``initialize`` by then is dropped for the next one.
HANDSHAKE_TIMEOUT_S = 10.0


def parse_address(text: str) -> tuple[str, int]:
    """``PORT`` or ``HOST:PORT``; the host defaults to 127.0.0.1 (never all interfaces)."""
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected [HOST:]PORT, got {text!r}") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0 to 65535, got {number}")
    return host.strip("[]") or "127.0.0.1", number


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser(
        "serve", help="run the language server (stdio; connect your editor's LSP client)"
    )
    add_model_argument(serve)
    serve.add_argument(
        "--tcp",
        metavar="[HOST:]PORT",
        type=parse_address,
        help="listen on a TCP port instead of stdio (host defaults to 127.0.0.1). Clients are "
        "served one at a time: when one disconnects, or sends no initialize within "
        "--handshake-timeout seconds, the next connection is served; `exit` ends the server",
    )
    serve.add_argument(
        "--handshake-timeout",
        type=_positive_seconds,
        default=HANDSHAKE_TIMEOUT_S,
        metavar="S",
        help=f"with --tcp: seconds a client has to send initialize ({HANDSHAKE_TIMEOUT_S:g})",
    )
    serve.add_argument(
        "--learn",
        action="store_true",
        help="learn from your writing (the ghostwrite.learn setting, on whatever the editor says)",
    )
    serve.add_argument("--log-level", choices=LOG_LEVELS, default="info", help="stderr log level")
    serve.add_argument(
        "--print-options-markdown",
        action="store_true",
        help="print the Markdown table of the editor settings and exit",
    )
    serve.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from .options import options_markdown

    if args.print_options_markdown:
        sys.stdout.write(options_markdown())
        return 0
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.WARNING,
        format="ghostwrite %(levelname)s %(name)s: %(message)s",
    )
    # pygls logs every message at info: keep it quiet unless debugging.
    logging.getLogger("ghostwrite").setLevel(args.log_level.upper())
    logging.getLogger("pygls").setLevel(logging.DEBUG if args.log_level == "debug" else "WARNING")
    # pygls logs a traceback for invalid params; the server answers those with InvalidParams.
    logging.getLogger("pygls.protocol.json_rpc").addFilter(
        lambda record: not record.getMessage().startswith("Unable to deserialize message")
    )
    from ghostwrite.model.backend import limit_numpy_blas_threads

    limit_numpy_blas_threads(1)
    from .server import create_server
    from .session import run_stdio, run_tcp

    server = create_server(args.model, learn=args.learn)
    interactive = sys.stdin.isatty() if args.tcp is None else sys.stderr.isatty()
    model = _describe_model(server.model_dir())
    if args.tcp is not None:
        host, port = args.tcp

        def ready(address: str) -> None:
            if interactive:
                print(
                    f"ghostwrite {files.version()} language server ({model}) listening on "
                    f"{address}: point your editor's LSP client at this TCP address",
                    file=sys.stderr,
                )

        return run_tcp(server, host, port, ready, args.handshake_timeout)
    if interactive:
        print(
            f"ghostwrite {files.version()} language server ({model}) speaking LSP on stdin/stdout: "
            "configure your editor to start `ghostwrite serve` (Ctrl-D quits)",
            file=sys.stderr,
        )
    return run_stdio(server)


def _describe_model(directory: Path) -> str:
    if files.present(directory / files.META_FILE):
        return f"model {directory}"
    return f"no model yet at {directory}"
