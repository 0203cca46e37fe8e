"""The `kdiag` command group. Commands live in kdiag/commands/, loaded only when used.

Each command module parses its options, calls one library function and renders the result.
Errors a person can cause (KdiagError) become one paragraph on stderr and exit code 2;
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import sys
import traceback

import click

from kdiag import __version__

# name -> (module, one-line help). The help is here so `kdiag --help` imports no command module.
COMMANDS: dict[str, tuple[str, str]] = {
    "inspect": ("kdiag.commands.inspect", "Show a model's serving signatures and what the endpoint will expect."),
    "validate": ("kdiag.commands.validate", "Predict what the endpoint answers to a payload, stage by stage, without the model."),
    "sample": ("kdiag.commands.sample", "Generate payloads that a signature accepts."),
    "replay": ("kdiag.commands.replay", "Run a payload through the real model exactly as the endpoint would, stage by stage."),
    "diff": ("kdiag.commands.diff", "Compare two sets of outputs (responses, .npy/.npz, replay or capture files)."),
    "probe": ("kdiag.commands.probe", "Diagnose a live SageMaker endpoint: status, model, payloads, failures, logs."),
    "check": ("kdiag.commands.check", "The pre-deploy gate for CI: lint, validate and replay payloads, check outputs, in one run."),
    "serve": ("kdiag.commands.serve", "Serve a model locally as a SageMaker endpoint (container, Runtime API, TF Serving REST) for real clients."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module = importlib.import_module(COMMANDS[name][0])
        return module.command

    def invoke(self, ctx: click.Context):
        """Errors a person can cause end here, as one paragraph and exit code 2."""
        from kdiag.errors import KdiagError
        from kdiag.redact import mask

        try:
            return super().invoke(ctx)
        except KdiagError as e:
            if (ctx.obj or {}).get("debug"):
                raise
            click.echo(mask(f"kdiag: {e}"), err=True)
            ctx.exit(2)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, help_) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kdiag")
@click.option("--debug", is_flag=True, help="Show Python tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Find why a Keras/TensorFlow model that works in your notebook fails behind a SageMaker
    endpoint, before you deploy it.

    \b
    Typical session:
      kdiag inspect model.tar.gz                    what the endpoint will expect
      kdiag validate body.json --signature model/   what it will answer, why, and the fix
      kdiag sample --signature model/ > p.json      a payload that works
      kdiag replay body.json --model model.tar.gz   the real model, stage by stage
      kdiag check                                   the pre-deploy gate, for CI
      kdiag probe my-endpoint                       a live endpoint, end to end

    Exit codes: 0 all clear, 1 findings at or above the failing severity, 2 usage error or
    unreadable input.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


class Terminated(BaseException):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt, so that every
    `finally` and `with` block runs (temporary folders, half-written files) before exit 143."""


_SIGNALLED: list[int] = []  # the signal that started the stop, once one came


def _stop_once(signum, frame) -> None:
    """The first Ctrl-C or SIGTERM unwinds the run (every `finally`: temporary folders,
    half-written files); later ones are ignored until the exit, so a second Ctrl-C cannot cut
    that cleanup short and leave a folder behind (SIGKILL still stops a hung one)."""
    import signal

    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)
    _SIGNALLED.append(signum)
    raise KeyboardInterrupt() if signum == signal.SIGINT else Terminated()


def main(argv: list[str] | None = None) -> None:
    import signal
    import threading

    _SIGNALLED.clear()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, _stop_once) for s in (signal.SIGINT, signal.SIGTERM)}

    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        _run(argv, debug)
    except SystemExit as e:
        stopped = {signal.SIGINT: (130, "Interrupted."), signal.SIGTERM: (143, "Terminated.")}
        if _SIGNALLED and e.code not in (130, 143):
            # Code that catches everything (TensorFlow's import does) swallowed the stop: the
            # run went on and cleaned up; the exit code still says it was stopped.
            code, words = stopped[_SIGNALLED[0]]
            click.echo(words, err=True)
            raise SystemExit(code) from None
        raise
    finally:
        # An in-process caller (a test, a script) gets its handlers back; after a signal they
        # stay ignored, so that one arriving while the process exits cannot change its code.
        for s, handler in previous.items():
            if signal.getsignal(s) is _stop_once:
                signal.signal(s, handler)


def _run(argv: list[str] | None, debug: bool) -> None:
    from kdiag.errors import KdiagError
    from kdiag.redact import mask

    try:
        # Without standalone mode click returns a command's exit code instead of exiting.
        rc = cli.main(args=argv, prog_name="kdiag", standalone_mode=False)
        sys.exit(rc if isinstance(rc, int) else 0)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.message = mask(e.message)
        e.show()
        sys.exit(2 if e.exit_code in (1, 2) else e.exit_code)
    except KdiagError as e:
        if debug:  # the traceback as well, and the same exit code as without --debug
            traceback.print_exc()
        click.echo(mask(f"kdiag: {e}"), err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Terminated:
        click.echo("Terminated.", err=True)
        sys.exit(143)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as e:  # a bug in kdiag: still one paragraph, with a pointer to --debug
        if debug:
            traceback.print_exc()
            click.echo(mask(f"kdiag: internal error: {type(e).__name__}: {e}."), err=True)
            sys.exit(2)
        click.echo(mask(f"kdiag: internal error: {type(e).__name__}: {e}. "
                        "Run again with --debug for the traceback and report it."), err=True)
        sys.exit(2)
    sys.exit(0)
