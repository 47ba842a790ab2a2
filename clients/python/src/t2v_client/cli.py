"""`t2v`: submit prompts to a t2v API, follow them, download the videos.

Exit codes: 0 done; 1 the job failed, was canceled or did not finish in --timeout (or its
video did not verify); 2 bad input (refused by this command or by the API); 3 could not
reach the API (after retries); 130 interrupted.

Other packages add commands through the `t2v.commands` entry-point group: each entry is a
function that takes the subparsers object and adds its parsers, each with
`set_defaults(run=function(args) -> exit code)`. The t2v server adds `local`, `demo` and
`build-tiny-model` this way.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.prompt import Confirm
from rich.table import Table
from rich.text import Text

from t2v_client.client import Client
from t2v_client.display import JobBar, describe, eta_text
from t2v_client.errors import (
    APIConnectionError,
    APIError,
    JobFailedError,
    T2VError,
)
from t2v_client.limits import FIELDS, MAX_WEBHOOK_CHARS, WEBHOOK_EVENTS, WEBHOOK_FIELDS
from t2v_client.models import Job, JobStatus

EXIT_DONE = 0
EXIT_JOB_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130
COMMAND_GROUP = "t2v.commands"

Registrar = Callable[[Any], None]
out = Console(soft_wrap=True)
err = Console(stderr=True)


def _client_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="the API (env T2V_URL; default http://127.0.0.1:8080)")
    common.add_argument("--api-key", help="bearer API key (env T2V_API_KEY)")
    common.add_argument("--json", action="store_true", help="print JSON for scripts")
    return common


def _request_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt", help=FIELDS["prompt"].help)
    for field in FIELDS.values():
        if field.name == "prompt":
            continue
        flags = ["--" + field.name.replace("_", "-")]
        if field.name == "num_inference_steps":
            flags.append("--steps")
        parser.add_argument(*flags, dest=field.name, type=field.kind, help=field.help)
    parser.add_argument(
        "--webhook",
        help=f"https URL told about the job (signed; at most {MAX_WEBHOOK_CHARS} characters)",
    )
    parser.add_argument(
        "--webhook-event",
        dest="webhook_events",
        action="append",
        choices=WEBHOOK_EVENTS,
        help="which events go to --webhook (repeatable; default completed)",
    )
    parser.add_argument(
        "--idempotency-key", help="reuse one to make sure a job is made once (default: a new one)"
    )


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    names = [*FIELDS, *WEBHOOK_FIELDS]
    return {name: getattr(args, name) for name in names if name != "prompt"}


def build_parser(registrars: Iterable[Registrar] = ()) -> argparse.ArgumentParser:
    """The client's commands, and those each of `registrars` adds."""
    parser = argparse.ArgumentParser(
        prog="t2v",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n")[1],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _client_options()

    def command(name: str, help: str, run: Callable[[argparse.Namespace], int]) -> Any:
        sub = commands.add_parser(name, help=help, description=help, parents=[common])
        sub.set_defaults(run=run)
        return sub

    generate = command(
        "generate", "submit a prompt, show its progress, download the MP4", _generate
    )
    _request_options(generate)
    generate.add_argument("--out", help="where to write the MP4 (default JOB_ID.mp4)")
    generate.add_argument("--timeout", type=float, help="give up waiting after this many seconds")
    _request_options(command("submit", "submit a prompt; print the job", _submit))
    command("status", "show a job", _status).add_argument("job_id")
    listing = command("list", "list jobs, newest first", _list)
    listing.add_argument("--status", choices=[s.value for s in JobStatus])
    listing.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    wait = command("wait", "follow a job until it ends (exit 0 only if it succeeded)", _wait)
    wait.add_argument("job_id")
    wait.add_argument("--timeout", type=float, help="give up after this many seconds")
    command("cancel", "cancel a job", _cancel).add_argument("job_id")
    command("delete", "delete a finished job's video", _delete).add_argument("job_id")
    download = command("download", "download a job's MP4 (resumed, sha256 checked)", _download)
    download.add_argument("job_id")
    download.add_argument("--out", help="where to write the MP4 (default JOB_ID.mp4)")
    for register in registrars:
        register(commands)
    return parser


def plugins(extra: Iterable[Registrar] = ()) -> list[Registrar]:
    """The `t2v.commands` entry points, and `extra`."""
    found = []
    for entry in entry_points(group=COMMAND_GROUP):
        try:
            found.append(entry.load())
        except Exception as exc:
            # A broken plugin costs its own commands, not the client's.
            err.print(f"t2v: the {entry.name} commands ({entry.value}) did not load: {exc!r}")
    # A package may pass its own registrar as well as declare it: add its commands once.
    return list(dict.fromkeys([*found, *extra]))


def _client(args: argparse.Namespace) -> Client:
    return Client(args.url, args.api_key)


def _print_job(args: argparse.Namespace, job: Job) -> None:
    if args.json:
        print(json.dumps(job.raw))
        return
    table = Table(show_header=False, box=None)
    table.add_row("id", job.id)
    table.add_row("status", describe(job))
    if job.progress is not None:
        table.add_row("progress", f"step {job.progress.step}/{job.progress.total}")
    if job.eta_seconds is not None:
        table.add_row("eta", eta_text(job.eta_seconds))
    if job.error is not None:
        table.add_row("error", Text(f"{job.error.code}: {job.error.message}"))
    if job.video is not None:
        video = job.video
        table.add_row("video", f"{video.width}x{video.height}, {video.num_frames} frames")
        table.add_row("sha256", video.sha256)
    table.add_row("prompt", Text(str(job.params.get("prompt", ""))))
    out.print(table)


def _follow(client: Client, args: argparse.Namespace, job: Job) -> Job:
    """Wait for the job with the live bar (on a terminal, not with --json). Ctrl-C asks
    whether to cancel it; either way the command then ends with 130."""
    bar = JobBar(err, enabled=err.is_terminal and not args.json)
    try:
        with bar:
            bar.show(job)
            return client.wait(job, timeout_s=args.timeout, on_progress=bar.show)
    except KeyboardInterrupt:
        bar.stop()
        if sys.stdin.isatty() and _confirm(f"cancel job {job.id}?"):
            client.cancel(job)
            err.print(f"job {job.id} canceled")
        else:
            err.print(f"job {job.id} keeps running: t2v wait {job.id}")
        raise


def _confirm(question: str) -> bool:
    try:
        return Confirm.ask(question, console=err, default=False)
    except (KeyboardInterrupt, EOFError):
        return False


def _generate(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.submit(args.prompt, idempotency_key=args.idempotency_key, **_fields(args))
        if not args.json:
            err.print(f"submitted {job.id}")
        done = _follow(client, args, job)
        if done.status != JobStatus.SUCCEEDED:
            raise JobFailedError(done)
        bar = JobBar(err, enabled=err.is_terminal and not args.json, first="downloading")
        with bar:
            path, digest = client.download(done, args.out, on_bytes=bar.bytes)
    if args.json:
        print(json.dumps({"job": done.raw, "path": str(path), "sha256": digest}))
    else:
        assert done.video is not None
        size = f"{done.video.width}x{done.video.height}, {done.video.num_frames} frames"
        out.print(f"{path}  {size}, sha256 {digest}", highlight=False)
    return EXIT_DONE


def _submit(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.submit(args.prompt, idempotency_key=args.idempotency_key, **_fields(args))
    if args.json:
        print(json.dumps(job.raw))
    else:
        out.print(f"{job.id}  {describe(job)}")
    return EXIT_DONE


def _status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _print_job(args, client.get(args.job_id))
    return EXIT_DONE


def _list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        jobs = list(client.list(status=args.status, limit=args.limit))
    if args.json:
        print(json.dumps([job.raw for job in jobs]))
        return EXIT_DONE
    table = Table("status", "created", "prompt")
    # An id is what a user copies into the next command: never cut short.
    table.add_column("id", no_wrap=True, min_width=36)
    for job in jobs:
        prompt = Text(str(job.params.get("prompt", ""))[:50])
        table.add_row(describe(job), (job.created_at or "")[:19], prompt, job.id)
    out.print(table)
    return EXIT_DONE


def _wait(args: argparse.Namespace) -> int:
    with _client(args) as client:
        done = _follow(client, args, client.get(args.job_id))
    _print_job(args, done)
    return EXIT_DONE if done.status == JobStatus.SUCCEEDED else EXIT_JOB_FAILED


def _cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _print_job(args, client.cancel(args.job_id))
    return EXIT_DONE


def _delete(args: argparse.Namespace) -> int:
    with _client(args) as client:
        client.delete(args.job_id)
    if args.json:
        print(json.dumps({"id": args.job_id, "deleted": True}))
    else:
        out.print(f"deleted the video of {args.job_id}")
    return EXIT_DONE


def _download(args: argparse.Namespace) -> int:
    with _client(args) as client:
        path, digest = client.download(args.job_id, args.out)
    if args.json:
        print(json.dumps({"path": str(path), "sha256": digest}))
    else:
        out.print(f"{path}  sha256 {digest}", highlight=False)
    return EXIT_DONE


def _fail(args: argparse.Namespace, code: int, error: dict[str, Any]) -> int:
    if getattr(args, "json", False):
        print(json.dumps({"error": error}))
    else:
        where = f" (field {error['field']})" if error.get("field") else ""
        err.print(
            f"[red]error[/red]: {escape(error['code'])}: {escape(error['message'])}{escape(where)}",
            highlight=False,
        )
    return code


def main(argv: list[str] | None = None, *, extra: Iterable[Registrar] = ()) -> int:
    args = build_parser(plugins(extra)).parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except APIError as exc:
        # The API refused the request (4xx): bad input; 5xx and spent retries: unreachable.
        code = (
            EXIT_BAD_INPUT if exc.status_code < 500 and exc.status_code != 429 else EXIT_UNREACHABLE
        )
        return _fail(args, code, {"code": exc.code, "message": exc.message, "field": exc.field})
    except APIConnectionError as exc:
        return _fail(args, EXIT_UNREACHABLE, {"code": "unreachable", "message": str(exc)})
    except JobFailedError as exc:
        job = exc.job
        error = {"code": job.error.code if job.error else job.status.value, "message": str(exc)}
        return _fail(args, EXIT_JOB_FAILED, {**error, "job": job.raw})
    except (T2VError, TimeoutError) as exc:  # IntegrityError among them
        return _fail(args, EXIT_JOB_FAILED, {"code": type(exc).__name__, "message": str(exc)})


if __name__ == "__main__":
    sys.exit(main())
