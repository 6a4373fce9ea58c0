"""The `mlfit` command: a lazy Click group, the shared options, and the exit codes.

Subcommands are imported only when run, so `mlfit --help` never imports numpy or pyarrow.
Exit codes are mlfit.errors.ExitCode.
"""

from __future__ import annotations

import errno
import importlib
import io
import os
import signal
import sys
import warnings

import click

from mlfit import __version__
from mlfit.errors import ExitCode, MlfitError, Terminated
from mlfit.solvers import SOLVERS, module_name

#: Commands that are not models.
OTHER_COMMANDS = {"predict": "Apply a saved model file to new data."}


class LazyGroup(click.Group):
    """Lists subcommands from the registry; imports a subcommand's module only to run it."""

    def list_commands(self, ctx):
        return [*SOLVERS, *OTHER_COMMANDS]

    def get_command(self, ctx, name):
        if name not in SOLVERS and name not in OTHER_COMMANDS:
            return None
        return importlib.import_module(f"mlfit.commands.{module_name(name)}").command

    def format_commands(self, ctx, formatter):
        rows = [(name, spec.summary) for name, spec in SOLVERS.items()]
        rows += list(OTHER_COMMANDS.items())
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx):
        try:
            with warnings.catch_warnings():
                # numpy's floating-point warnings: every condition they signal is checked and
                # reported by mlfit as one message with a remedy, so the raw text never shows
                warnings.simplefilter("ignore", RuntimeWarning)
                return super().invoke(ctx)
        except MlfitError as exc:
            if ctx.obj and ctx.obj.get("traceback"):
                raise
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(int(exc.exit_code))
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(ExitCode.INTERRUPTED)
        except Terminated:
            click.echo("Terminated.", err=True)
            ctx.exit(ExitCode.TERMINATED)
        except BrokenPipeError:
            # The reader went away (`mlfit ... | head`): stop quietly, as other Unix tools do.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(ExitCode.BROKEN_PIPE)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:  # a bug: still one line, with the way to get the details
            if isinstance(exc, OSError) and exc.errno in WRITE_ERRORS:  # the environment
                click.echo(f"Error: cannot write the output: {exc.strerror or exc}.", err=True)
                ctx.exit(ExitCode.FIT_FAILED)
            if ctx.obj and ctx.obj.get("traceback"):
                raise
            click.echo(
                f"Error: internal error ({type(exc).__name__}: {exc}). This is a bug in "
                "mlfit: rerun with MLFIT_TRACEBACK=1 and report the output.",
                err=True,
            )
            ctx.exit(ExitCode.FIT_FAILED)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="mlfit")
@click.option(
    "--traceback",
    is_flag=True,
    hidden=True,
    envvar="MLFIT_TRACEBACK",
    help="Show the Python traceback of an error (for bug reports).",
)
@click.pass_context
def cli(ctx, traceback):
    """Fit models to a table (CSV, TSV, Parquet, JSON Lines; compressed; or - for stdin).

    \b
        mlfit normal-eq sample_data/houses.csv -y price
        mlfit linreg sample_data/houses.csv -y price --json | jq .coefficients
        mlfit normal-eq sample_data/houses.csv -y price -o houses.model
        mlfit predict houses.model sample_data/houses.csv

    Run `mlfit COMMAND --help` for the options of one command.
    """
    ctx.obj = {"traceback": traceback}


#: BLAS threading: mlfit's solvers work on cache-sized blocks, where a second BLAS thread
#: gains little on an idle machine and, on a busy one, spin-waits (measured: a logistic fit
#: 26 s with 2 threads against 2 s with 1, while another process used a core). Set any of these
#: variables yourself to choose otherwise.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


#: errno values of a failed write: a full disk, a closed or broken output device.
WRITE_ERRORS = {errno.ENOSPC, errno.EBADF, errno.EIO, errno.EDQUOT, errno.EFBIG, errno.EROFS}


class _ClosedOutput(io.TextIOBase):
    """Standard output when the process started without one: writing is an OSError, which
    the group reports as one line (a command that writes only to --output still works)."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "standard output is closed; redirect it to a file")


def _terminate(signum, frame):
    raise Terminated


def main() -> None:
    if not any(v in os.environ for v in BLAS_THREAD_VARIABLES):
        os.environ["OPENBLAS_NUM_THREADS"] = "1"  # read when numpy loads, after this line
        os.environ["MKL_NUM_THREADS"] = "1"
    signal.signal(signal.SIGTERM, _terminate)
    # mlfit/__init__ exits quietly on Ctrl-C during the imports; from here KeyboardInterrupt is
    # caught below (and in the group) with the same message and exit code.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if sys.stdout is None:  # started with stdout closed (>&-): fail when it is written to
        sys.stdout = _ClosedOutput()
    try:
        cli(prog_name="mlfit")
    except KeyboardInterrupt:  # before the group's own handler is reached (imports)
        click.echo("Interrupted.", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except Terminated:
        click.echo("Terminated.", err=True)
        sys.exit(ExitCode.TERMINATED)
