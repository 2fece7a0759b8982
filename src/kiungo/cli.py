"""The ``kiungo`` command: integrator tools now, the bus's own commands later.

    kiungo keys new         make a key pair to register with the bus
    kiungo envelope sign    wrap a ``data`` object in a signed envelope
    kiungo envelope verify  check an envelope against a public key
    kiungo payload encrypt  encrypt for a recipient's public key
    kiungo payload decrypt  decrypt with one's private key
    kiungo version

Each group is a sub-Typer added to the module-level ``app``; ``serve``, ``demo``,
``registry`` and ``log`` join the same way. Errors end up in one place,
:meth:`_Group.invoke`, which prints one line on stderr and exits: 1 when the input was
checked and refused (``invalid: CODE: why``), 2 when the command could not do its job
(``error: why``: bad key, unreadable file, data that is not JSON). No traceback reaches
the terminal unless ``KIUNGO_DEBUG=1``.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from typer.core import TyperGroup

from kiungo import __version__
from kiungo.errors import KiungoError
from kiungo.protocol import (
    REQUEST_ROOT,
    RESPONSE_ROOT,
    Curve,
    Format,
    InvalidKey,
    PrivateKey,
    PublicKey,
    build_envelope,
    decrypt,
    encrypt_to_json,
    generate_private_key,
    load_private_key,
    load_public_key,
    parse_envelope,
)

EXIT_INVALID = 1  # the input was checked and refused
EXIT_USAGE = 2  # the command could not do its job (usage errors exit 2 too)
EXIT_INTERNAL = 70  # a bug in kiungo (EX_SOFTWARE)


class CliError(Exception):
    """A problem with what the user gave the command; exits 2 with ``error: message``."""


class Refused(Exception):
    """The input was checked and is not valid; exits 1 with ``invalid: code: message``."""

    def __init__(self, error: KiungoError) -> None:
        super().__init__(error.message)
        self.error = error


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _fail(prefix: str, message: str, code: int) -> NoReturn:
    typer.echo(f"{prefix}: {_one_line(message)}", err=True)
    raise typer.Exit(code)


class _Group(TyperGroup):
    """The root group: the one place where errors become a line and an exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.TyperException, typer.Exit, typer.Abort):  # usage errors, exits
            raise
        except Refused as exc:
            _fail("invalid", f"{exc.error.code}: {exc.error.message}", EXIT_INVALID)
        except CliError as exc:
            _fail("error", str(exc), EXIT_USAGE)
        except KiungoError as exc:
            _fail("error", f"{exc.code}: {exc.message}", EXIT_USAGE)
        except OSError as exc:
            if exc.errno == errno.EPIPE:  # let typer quiet a closed pipe (`| head`)
                raise
            where = f"{exc.filename}: " if exc.filename else ""
            _fail("error", f"{where}{exc.strerror or exc}", EXIT_USAGE)
        except Exception as exc:
            if os.environ.get("KIUNGO_DEBUG") == "1":
                raise
            _fail(
                "error",
                f"internal error ({type(exc).__name__}: {exc}); "
                "rerun with KIUNGO_DEBUG=1 for the traceback and report it",
                EXIT_INTERNAL,
            )


app = typer.Typer(
    name="kiungo",
    help="kiungo: an open-source Government Enterprise Service Bus (GovESB protocol).",
    cls=_Group,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help="Make EC key pairs for the bus.", no_args_is_help=True)
envelope_app = typer.Typer(help="Sign and verify GovESB envelopes.", no_args_is_help=True)
payload_app = typer.Typer(
    help="Encrypt and decrypt payloads (the JavaScript connector's ECIES).", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")
app.add_typer(envelope_app, name="envelope")
app.add_typer(payload_app, name="payload")


def _notes() -> Console:
    """Human notes go to stderr, so stdout stays what a script would pipe on."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


# --- input helpers -----------------------------------------------------------------------


def _read_input(source: str) -> bytes:
    """The bytes of FILE, or of stdin for ``-``."""
    if source == "-":
        if sys.stdin.isatty():
            _notes().print("reading from stdin (end with Ctrl-D)")
        return sys.stdin.buffer.read()
    return Path(source).read_bytes()


def _key_material(option: str, value: str) -> tuple[str | bytes, bool]:
    """(material, came_from_file): a file's bytes if ``value`` names a file, else the text."""
    try:
        is_file = Path(value).is_file()
    except (OSError, ValueError):  # too long for a path name, NUL byte: it is key text
        is_file = False
    if is_file:
        try:
            return Path(value).read_bytes(), True
        except OSError as exc:
            raise CliError(f"{option}: cannot read {value}: {exc.strerror}") from None
    return value, False


def _not_a_key(option: str, value: str, from_file: bool, exc: InvalidKey) -> CliError:
    if from_file:
        return CliError(f"{option}: {value}: {exc.message}")
    # Key text is PEM or long base64 (never a "."): anything else was meant as a file name.
    if not value.lstrip().startswith("-----") and ("." in value or len(value) < 100):
        return CliError(f"{option}: {value!r} is neither a file nor a key ({exc.message})")
    return CliError(f"{option}: {exc.message}")


def _private_key(option: str, value: str) -> PrivateKey:
    material, from_file = _key_material(option, value)
    try:
        return load_private_key(material)
    except InvalidKey as exc:
        try:
            load_public_key(material)
        except InvalidKey:
            raise _not_a_key(option, value, from_file, exc) from None
        raise CliError(f"{option}: this is a public key; a private key is needed here") from None


def _public_key(option: str, value: str) -> PublicKey:
    material, from_file = _key_material(option, value)
    try:
        return load_public_key(material)
    except InvalidKey as exc:
        try:
            private = load_private_key(material)
        except InvalidKey:
            raise _not_a_key(option, value, from_file, exc) from None
        raise CliError(
            f"{option}: this is a private key; pass its public key ({private.public_key.b64})"
        ) from None


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _read_data(source: str) -> dict[str, Any]:
    raw = _read_input(source)
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise CliError("data is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, NaN/Infinity
        raise CliError(f"data is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CliError(f"data must be a JSON object, got {type(data).__name__}")
    return data


def _write_stdout(payload: bytes) -> None:
    """Exact bytes on stdout; a newline only for a terminal, so pipes get the bytes as-is."""
    out = sys.stdout.buffer
    out.write(payload)
    if sys.stdout.isatty() and not payload.endswith(b"\n"):
        out.write(b"\n")
    out.flush()


# --- keys --------------------------------------------------------------------------------

_KEY_FILES = ("private.key", "private.pem", "public.key", "public.pem")


def _write_new_file(path: Path, text: str, mode: int, force: bool) -> None:
    """Create ``path`` with ``mode``; never write through an existing file or symlink."""
    if force and (path.is_symlink() or path.exists()):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        if mode == 0o600:
            os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, text.encode("ascii"))
    finally:
        os.close(fd)


@keys_app.command("new")
def keys_new(
    curve: Annotated[
        Curve, typer.Option(case_sensitive=False, help="secp256k1 (GovESB's) or p256.")
    ] = Curve.SECP256K1,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Directory to write private.key/.pem (mode 0600), public.key/.pem."
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite existing key files in --out.")] = False,
) -> None:
    """Generate a key pair; print the public key (base64 DER) to register with the bus."""
    key = generate_private_key(curve)
    public = key.public_key
    notes = _notes()
    if out is None:
        typer.echo(f"private key: {key.b64}")
        typer.echo(f"public key: {public.b64}")
        notes.print(
            "warning: the private key was printed in clear; anyone who sees it can sign as "
            "you. Prefer --out DIR, which writes it to a file only you can read."
        )
        return
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / name for name in _KEY_FILES]
    existing = [str(p) for p in paths if p.exists() or p.is_symlink()]
    if existing and not force:
        raise CliError(f"refusing to overwrite {', '.join(existing)} (use --force)")
    contents = (key.b64 + "\n", key.pem, public.b64 + "\n", public.pem)
    for path, text in zip(paths, contents, strict=True):
        _write_new_file(path, text, 0o600 if path.name.startswith("private") else 0o644, force)
    typer.echo(public.b64)
    notes.print(f"wrote a {curve.value} key pair to {out}/:")
    notes.print(f"  {paths[0]}  private, base64 DER PKCS#8 (mode 0600): keep it secret")
    notes.print(f"  {paths[1]}  private, PEM (mode 0600)")
    notes.print(f"  {paths[2]}  public, base64 DER SubjectPublicKeyInfo")
    notes.print(f"  {paths[3]}  public, PEM")
    notes.print(f"register the public key printed above with the bus (sha256 {public.fingerprint})")


# --- envelopes ---------------------------------------------------------------------------


class Root(StrEnum):
    ESBREQUEST = REQUEST_ROOT
    ESBRESPONSE = RESPONSE_ROOT


_FILE_HELP = "File to read, or - for stdin."


@envelope_app.command("sign")
def envelope_sign(
    key: Annotated[str, typer.Option(help="Private key: a file, or base64 DER / PEM text.")],
    source: Annotated[str, typer.Argument(metavar="FILE|-", help=_FILE_HELP)] = "-",
    fmt: Annotated[Format, typer.Option("--format", help="Envelope format.")] = Format.JSON,
    root: Annotated[Root, typer.Option(help="XML root element.")] = Root.ESBREQUEST,
) -> None:
    """Sign a data object and print the envelope.

    FILE holds the data as JSON text, e.g. {"apiCode": "...", "esbBody": {...}}.
    """
    private = _private_key("--key", key)
    data = _read_data(source)
    _write_stdout(build_envelope(data, private, fmt, root=root.value))


@envelope_app.command("verify")
def envelope_verify(
    key: Annotated[str, typer.Option(help="Public key: a file, or base64 DER / PEM text.")],
    source: Annotated[str, typer.Argument(metavar="FILE|-", help=_FILE_HELP)] = "-",
    content_type: Annotated[
        str | None,
        typer.Option(help="Content-Type the envelope came with (default: guess from the body)."),
    ] = None,
) -> None:
    """Verify an envelope; print its data (exit 0) or the check that failed (exit 1)."""
    public = _public_key("--key", key)
    body = _read_input(source)
    try:
        envelope = parse_envelope(body, content_type)
        envelope.verify(public)
    except KiungoError as exc:
        raise Refused(exc) from None
    typer.echo(json.dumps(envelope.data, indent=2, ensure_ascii=False))
    _notes().print(
        f"valid: {envelope.format.value} envelope signed by the {public.curve.value} key "
        f"{public.fingerprint[:16]}"
    )


# --- payloads ----------------------------------------------------------------------------


@payload_app.command("encrypt")
def payload_encrypt(
    to: Annotated[str, typer.Option("--to", help="Recipient's public key: a file or text.")],
    source: Annotated[str, typer.Argument(metavar="FILE|-", help=_FILE_HELP)] = "-",
) -> None:
    """Encrypt FILE for a recipient; print the JSON wire object."""
    public = _public_key("--to", to)
    _write_stdout(encrypt_to_json(_read_input(source), public))


@payload_app.command("decrypt")
def payload_decrypt(
    key: Annotated[str, typer.Option(help="Your private key: a file, or base64 DER / PEM text.")],
    source: Annotated[str, typer.Argument(metavar="FILE|-", help=_FILE_HELP)] = "-",
) -> None:
    """Decrypt a JSON wire object; write the plaintext bytes to stdout."""
    private = _private_key("--key", key)
    payload = _read_input(source)
    try:
        plaintext = decrypt(payload, private)
    except KiungoError as exc:
        raise Refused(exc) from None
    _write_stdout(plaintext)


# --- the bus ------------------------------------------------------------------------------

registry_app = typer.Typer(help="Operate the bus's registry and accounts.", no_args_is_help=True)
log_app = typer.Typer(help="Read the message log.", no_args_is_help=True)
app.add_typer(registry_app, name="registry")
app.add_typer(log_app, name="log")

DataOption = Annotated[
    Path | None, typer.Option("--data", help="Data directory (default: KIUNGO_DATA_DIR or var).")
]


def _settings(**options: Any) -> Any:
    """Settings from the environment, with the command's options exported over them so
    that worker processes (which read the environment) see the same values."""
    from kiungo.config import Settings

    for name, value in options.items():
        if value is not None:
            os.environ[f"KIUNGO_{name.upper()}"] = str(value)
    return Settings()


def _run(coro: Any) -> Any:
    import asyncio

    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(coro)


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Engine processes (PostgreSQL).")] = 1,
    data: DataOption = None,
    database_url: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL (default: SQLite in the data directory).")
    ] = None,
) -> None:
    """Run the bus (token endpoint, engine, operator API)."""
    from kiungo.app import serve as serve_bus

    settings = _settings(host=host, port=port, data_dir=data, database_url=database_url)
    serve_bus(settings, workers=workers)


@app.command("demo")
def demo(
    port: Annotated[
        int, typer.Option(help="Port of the bus; demo providers use the next ones.")
    ] = 8080,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    data: Annotated[Path, typer.Option("--data", help="Data directory.")] = Path("var"),
) -> None:
    """Run the bus with the demo world (SQLite, demo institutions and providers)."""
    from kiungo.demo.run import serve_demo

    _run(serve_demo(data, host, port))


@keys_app.command("show-bus")
def keys_show_bus(data: DataOption = None) -> None:
    """Print the bus public key (base64 DER) that institutions configure."""
    settings = _settings(data_dir=data)
    path = settings.data_dir / "keys" / "bus.key"
    if not path.exists():
        raise CliError(f"no bus key in {settings.data_dir}: start the bus once to create it")
    typer.echo(load_private_key(path.read_bytes()).public_key.b64)


@registry_app.command("create-operator")
def registry_create_operator(
    username: Annotated[str, typer.Option(help="The operator's login name.")],
    role: Annotated[str, typer.Option(help="admin, operator or viewer.")] = "operator",
    data: DataOption = None,
) -> None:
    """Create an operator account (asks for the password)."""
    from kiungo.app import Bus

    password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)

    async def create() -> None:
        bus = Bus(_settings(data_dir=data))
        await bus.start()
        try:
            await bus.operators.create("cli", username, password, role)
        finally:
            await bus.stop()

    _run(create())
    _notes().print(f"operator {username} ({role}) created")


@log_app.command("recent")
def log_recent(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many exchanges.")] = 20,
    system: Annotated[str | None, typer.Option(help="Only exchanges of this system.")] = None,
    data: DataOption = None,
) -> None:
    """List the most recent exchanges through the bus."""
    from rich.table import Table

    from kiungo.db import make_engine
    from kiungo.ledger.log import DatabaseExchangeLog

    settings = _settings(data_dir=data)

    async def read() -> list[dict[str, Any]]:
        db = make_engine(settings.effective_database_url)
        try:
            return await DatabaseExchangeLog(db).recent(limit, system)
        finally:
            await db.dispose()

    rows = _run(read())
    header = ("time", "request id", "kind", "consumer", "code", "provider", "status", "µs")
    lines = [
        (
            str(r["at"])[:23],
            r["request_id"],
            r["kind"],
            r["consumer_system"] or "-",
            r["code"] or "-",
            r["provider_system"] or "-",
            f"{r['http_status']}{'' if r['success'] else ' ' + (r['error_code'] or 'failed')}",
            str(r["latency_us"]),
        )
        for r in rows
    ]
    if not sys.stdout.isatty():  # piped: whole values, tab-separated, for scripts
        for line in (header, *lines):
            typer.echo("\t".join(line))
        return
    table = Table(*header)
    for line in lines:
        table.add_row(*line)
    Console(highlight=False).print(table)


# --- misc --------------------------------------------------------------------------------


@app.command("version")
def version() -> None:
    """Print kiungo's version and those of its crypto libraries."""
    libs = ", ".join(
        f"{name} {metadata.version(name)}" for name in ("coincurve", "cryptography", "orjson")
    )
    py = ".".join(map(str, sys.version_info[:3]))
    typer.echo(f"kiungo {__version__} (Python {py}, {libs})")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
