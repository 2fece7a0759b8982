"""The `kiungo` command's integrator tools: keys, envelopes, payloads, and its errors."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import load_vectors
from typer.testing import CliRunner

from kiungo import __version__
from kiungo.cli import app
from kiungo.protocol import (
    Curve,
    decrypt,
    load_private_key,
    load_public_key,
    parse_envelope,
)

DATA = {
    "apiCode": "NIDA-VERIFY-01",
    "esbBody": {"jina": "Zuhura Mwanaisha", "ujumbe": "Habari za asubuhi, ndugu!", "umri": 34},
}
CURVES = [Curve.SECP256K1, Curve.P256]
ENVELOPES = load_vectors("envelopes.json")["envelopes"]
ECIES = load_vectors("ecies.json")["vectors"]

# What `envelope verify` must say for each kind of invalid shared vector.
EXPECTED_REFUSAL = {
    "tampered_body": "invalid: client.invalid_signature: signature does not match",
    "wrong_key": "invalid: client.invalid_signature: signature does not match",
    "truncated_signature": "invalid: client.malformed_signature: signature is not a DER ECDSA",
    "signature_not_base64": "invalid: client.malformed_signature: signature is not valid base64",
    "missing_signature": 'invalid: client.malformed_signature: envelope has no "signature"',
    "zero_r": "invalid: client.invalid_signature: signature is malformed: r is zero",
    "tampered": "invalid: client.invalid_signature: signature does not match",
    "billion_laughs": "invalid: client.forbidden_xml: XML with a DTD",
    "external_entity": "invalid: client.forbidden_xml: XML with a DTD",
}


def run(*args: str | Path, input: bytes | str | None = None):
    result = CliRunner().invoke(app, [str(a) for a in args], input=input)
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception), result.exception  # only SystemExit
    return result


def stderr_lines(result) -> list[str]:
    return result.stderr.splitlines()


@pytest.fixture(params=CURVES, ids=lambda c: c.value)
def key_dir(request, tmp_path: Path) -> Path:
    """A directory holding a fresh key pair written by `kiungo keys new`."""
    result = run("keys", "new", "--curve", request.param.value, "--out", tmp_path / "keys")
    assert result.exit_code == 0, result.output
    return tmp_path / "keys"


class TestKeysNew:
    def test_writes_four_files_with_private_ones_readable_by_owner_only(self, key_dir: Path):
        """`keys new --out` writes private.key/.pem with mode 0600 and public.key/.pem."""
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in key_dir.iterdir()}
        assert set(modes) == {"private.key", "private.pem", "public.key", "public.pem"}
        assert modes["private.key"] == modes["private.pem"] == 0o600
        assert not modes["public.key"] & 0o022 and modes["public.key"] & 0o400

    @pytest.mark.parametrize("curve", CURVES, ids=lambda c: c.value)
    def test_files_hold_one_matching_key_pair_on_the_chosen_curve(self, curve, tmp_path: Path):
        """The four files load as one key pair on --curve; stdout is the base64 public key."""
        result = run("keys", "new", "--curve", curve.value, "--out", tmp_path)
        assert result.exit_code == 0
        private = load_private_key((tmp_path / "private.key").read_text())
        assert private.curve is curve
        assert load_private_key((tmp_path / "private.pem").read_text()).b64 == private.b64
        public_b64 = (tmp_path / "public.key").read_text().strip()
        assert public_b64 == private.public_key.b64
        assert load_public_key((tmp_path / "public.pem").read_text()) == private.public_key
        assert result.stdout.strip() == public_b64
        assert str(tmp_path / "private.key") in result.stderr

    def test_refuses_to_overwrite_existing_keys(self, key_dir: Path):
        """A second `keys new` into the same directory fails and leaves the old key intact."""
        before = (key_dir / "private.key").read_bytes()
        result = run("keys", "new", "--out", key_dir)
        assert result.exit_code == 2
        assert stderr_lines(result) == [
            f"error: refusing to overwrite {key_dir / 'private.key'}, "
            f"{key_dir / 'private.pem'}, {key_dir / 'public.key'}, "
            f"{key_dir / 'public.pem'} (use --force)"
        ]
        assert (key_dir / "private.key").read_bytes() == before

    def test_force_replaces_keys_and_restores_the_private_mode(self, key_dir: Path):
        """--force writes a new key pair, with mode 0600 even over a world-readable file."""
        before = (key_dir / "private.key").read_text()
        (key_dir / "private.key").chmod(0o644)
        result = run("keys", "new", "--out", key_dir, "--force")
        assert result.exit_code == 0
        assert (key_dir / "private.key").read_text() != before
        assert stat.S_IMODE((key_dir / "private.key").stat().st_mode) == 0o600
        private = load_private_key((key_dir / "private.key").read_text())
        assert private.public_key.b64 == result.stdout.strip()

    def test_without_out_prints_both_keys_and_warns(self):
        """Without --out both keys go to stdout and a warning about the private key to stderr."""
        result = run("keys", "new", "--curve", "p256")
        assert result.exit_code == 0
        lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
        private = load_private_key(lines["private key"])
        assert private.curve is Curve.P256
        assert private.public_key.b64 == lines["public key"]
        assert result.stderr.startswith("warning: the private key was printed in clear")


class TestEnvelopeRoundTrip:
    @pytest.mark.parametrize("fmt", ["json", "xml"])
    def test_sign_then_verify_returns_the_data(self, key_dir: Path, tmp_path: Path, fmt: str):
        """An envelope made by `envelope sign` passes `envelope verify`, which prints its data."""
        data_file = tmp_path / "data.json"
        data_file.write_text(json.dumps(DATA, ensure_ascii=False), encoding="utf-8")
        signed = run(
            "envelope", "sign", "--key", key_dir / "private.key", "--format", fmt, data_file
        )
        assert signed.exit_code == 0, signed.output
        envelope_file = tmp_path / "envelope"
        envelope_file.write_bytes(signed.stdout_bytes)
        verified = run("envelope", "verify", "--key", key_dir / "public.key", envelope_file)
        assert verified.exit_code == 0, verified.output
        expected = DATA if fmt == "json" else json.loads(json.dumps(DATA), parse_int=str)
        assert json.loads(verified.stdout) == expected
        assert verified.stderr.startswith(f"valid: {fmt} envelope")

    def test_sign_writes_exact_envelope_bytes(self, key_dir: Path):
        """The JSON envelope is the compact `{"data":…,"signature":…}` form, no trailing newline."""
        result = run("envelope", "sign", "--key", key_dir / "private.pem", input=json.dumps(DATA))
        body = result.stdout_bytes
        assert body.startswith(b'{"data":{"apiCode":"NIDA-VERIFY-01","esbBody":{"jina":')
        assert body.endswith(b'"}')
        parse_envelope(body).verify(load_public_key((key_dir / "public.pem").read_text()))

    @pytest.mark.parametrize("root", ["esbrequest", "esbresponse"])
    def test_xml_root_is_chosen_by_option(self, key_dir: Path, root: str):
        """--root names the XML envelope's root element; the default is esbrequest."""
        args = ["envelope", "sign", "--key", key_dir / "private.key", "--format", "xml"]
        if root != "esbrequest":
            args += ["--root", root]
        result = run(*args, "-", input=json.dumps(DATA))
        assert result.stdout_bytes.startswith(f"<{root}><data><apiCode>".encode())
        assert parse_envelope(result.stdout_bytes).root == root

    def test_stdin_is_read_for_dash_and_by_default(self, key_dir: Path):
        """FILE `-` (or no FILE) reads stdin for sign and for verify."""
        signed = run("envelope", "sign", "--key", key_dir / "private.key", input=json.dumps(DATA))
        assert signed.exit_code == 0
        verified = run(
            "envelope", "verify", "--key", key_dir / "public.key", "-", input=signed.stdout_bytes
        )
        assert verified.exit_code == 0
        assert json.loads(verified.stdout) == DATA

    def test_keys_are_accepted_as_text_as_well_as_files(self, key_dir: Path):
        """--key takes base64 DER or PEM text as well as a file name."""
        private_pem = (key_dir / "private.pem").read_text()
        public_b64 = (key_dir / "public.key").read_text().strip()
        signed = run("envelope", "sign", "--key", private_pem, input=json.dumps(DATA))
        assert signed.exit_code == 0
        verified = run("envelope", "verify", "--key", public_b64, input=signed.stdout_bytes)
        assert verified.exit_code == 0

    def test_envelope_verified_with_another_key_is_refused(self, key_dir: Path):
        """An envelope checked against someone else's public key exits 1 with the reason."""
        signed = run("envelope", "sign", "--key", key_dir / "private.key", input=json.dumps(DATA))
        other = run("keys", "new").stdout.splitlines()[1].removeprefix("public key: ")
        result = run("envelope", "verify", "--key", other, input=signed.stdout_bytes)
        assert result.exit_code == 1
        assert result.stdout == ""
        assert stderr_lines(result) == [
            "invalid: client.invalid_signature: signature does not match the signed data "
            "and the registered public key"
        ]


class TestSharedVectors:
    @pytest.mark.parametrize("vector", ENVELOPES, ids=lambda v: v["name"])
    def test_verify_gives_the_data_or_one_precise_line(self, vector, vector_keys):
        """Valid vectors print their data (exit 0); invalid ones one `invalid:` line (exit 1)."""
        public = vector_keys[vector["signer"]]["publicKeyB64"]
        result = run(
            "envelope",
            "verify",
            "--key",
            public,
            "--content-type",
            vector["content_type"],
            input=vector["envelope"].encode("utf-8"),
        )
        if vector["valid"]:
            assert result.exit_code == 0, result.stderr
            assert json.loads(result.stdout) == parse_envelope(vector["envelope"].encode()).data
        else:
            assert result.exit_code == 1
            assert result.stdout == ""
            [line] = stderr_lines(result)
            assert line.startswith(EXPECTED_REFUSAL[vector["name"].rsplit("/", 1)[-1]])


class TestPayload:
    @pytest.mark.parametrize("plaintext", [b"siri: Habari ya asubuhi", bytes(range(256))])
    def test_encrypt_then_decrypt_gives_back_the_bytes(self, key_dir: Path, plaintext: bytes):
        """`payload encrypt --to` then `payload decrypt --key` returns the exact plaintext."""
        sealed = run("payload", "encrypt", "--to", key_dir / "public.key", input=plaintext)
        assert sealed.exit_code == 0
        wire = json.loads(sealed.stdout)
        assert set(wire) == {"ephemeralKey", "iv", "encryptedData"}
        private = load_private_key((key_dir / "private.key").read_text())
        assert decrypt(sealed.stdout_bytes, private) == plaintext
        opened = run("payload", "decrypt", "--key", key_dir / "private.key", input=sealed.stdout)
        assert opened.exit_code == 0
        assert opened.stdout_bytes == plaintext

    @pytest.mark.parametrize("vector", ECIES, ids=lambda v: v["name"])
    def test_decrypts_the_javascript_connectors_payloads(self, vector, vector_keys, tmp_path):
        """Shared ECIES vectors decrypt to their plaintext; tampered ones exit 1."""
        payload = tmp_path / "payload.json"
        payload.write_text(json.dumps(vector["encrypted"]))
        key = vector_keys[vector["recipient"]]["privateKeyPem"]
        result = run("payload", "decrypt", "--key", key, payload)
        if vector["valid"]:
            assert result.exit_code == 0
            assert result.stdout_bytes == vector["plaintext"].encode("utf-8")
        else:
            assert result.exit_code == 1
            assert stderr_lines(result) == [
                "invalid: client.decryption_failed: authentication tag does not match: "
                "wrong key or altered payload"
            ]


class TestBadInput:
    @pytest.mark.parametrize(
        ("key", "expected"),
        [
            ("bm90IGEga2V5" * 12, "error: --key: private key could not be parsed"),
            ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----", "error: --key: "),
            ("keys/missing.key", "error: --key: 'keys/missing.key' is neither a file nor a key"),
            ("keys/private", "error: --key: 'keys/private' is neither a file nor a key"),
        ],
        ids=["base64_garbage", "pem_garbage", "missing_file", "missing_file_without_dot"],
    )
    def test_bad_private_key_is_one_error_line(self, key: str, expected: str):
        """A key that is neither a readable file nor key text gives one `error:` line, exit 2."""
        result = run("envelope", "sign", "--key", key, input=json.dumps(DATA))
        assert result.exit_code == 2
        [line] = stderr_lines(result)
        assert line.startswith(expected)
        assert result.stdout == ""

    def test_key_file_with_garbage_names_the_file(self, tmp_path: Path):
        """A key file that holds no key is named in the error."""
        bad = tmp_path / "private.key"
        bad.write_text("hello\n")
        result = run("payload", "decrypt", "--key", bad, input="{}")
        assert result.exit_code == 2
        assert stderr_lines(result) == [
            f"error: --key: {bad}: key is neither PEM nor base64 DER (not valid base64)"
        ]

    def test_public_key_where_private_is_needed(self, key_dir: Path):
        """Signing with a public key says so instead of a parse error."""
        result = run("envelope", "sign", "--key", key_dir / "public.key", input="{}")
        assert result.exit_code == 2
        assert stderr_lines(result) == [
            "error: --key: this is a public key; a private key is needed here"
        ]

    def test_private_key_where_public_is_needed(self, key_dir: Path):
        """Verifying with a private key says so and shows the public key to use."""
        result = run("envelope", "verify", "--key", key_dir / "private.key", input="{}")
        public = (key_dir / "public.key").read_text().strip()
        assert result.exit_code == 2
        assert stderr_lines(result) == [
            f"error: --key: this is a private key; pass its public key ({public})"
        ]

    @pytest.mark.parametrize("command", ["sign", "verify"])
    def test_missing_input_file(self, key_dir: Path, tmp_path: Path, command: str):
        """An input file that does not exist gives `error: FILE: No such file or directory`."""
        key = key_dir / ("private.key" if command == "sign" else "public.key")
        missing = tmp_path / "nope.json"
        result = run("envelope", command, "--key", key, missing)
        assert result.exit_code == 2
        assert stderr_lines(result) == [f"error: {missing}: No such file or directory"]

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            (b"{bad", "error: data is not valid JSON: Expecting property name"),
            (b'["apiCode"]', "error: data must be a JSON object, got list"),
            (b'{"n": NaN}', "error: data is not valid JSON: NaN is not valid JSON"),
            (b"\xff\xfe\xfa", "error: data is not valid JSON"),
            (b"[" * 100_000, "error: data is nested too deeply"),
        ],
        ids=["syntax", "array", "nan", "not_utf8", "deep"],
    )
    def test_bad_data_is_one_error_line(self, key_dir: Path, text: bytes, expected: str):
        """Data that is not a JSON object is refused with one `error:` line and exit 2."""
        result = run("envelope", "sign", "--key", key_dir / "private.key", input=text)
        assert result.exit_code == 2
        [line] = stderr_lines(result)
        assert line.startswith(expected)

    def test_data_xml_cannot_carry_is_an_error(self, key_dir: Path):
        """A key that cannot be an XML element name fails `sign --format xml` with one line."""
        result = run(
            "envelope", "sign", "--key", key_dir / "private.key", "--format", "xml",
            input='{"1bad name": "x"}',
        )  # fmt: skip
        assert result.exit_code == 2
        assert stderr_lines(result) == [
            "error: server.encoding_error: '1bad name' cannot be an XML element name"
        ]

    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            (b"garbage", "invalid: client.malformed_envelope: envelope is not valid JSON"),
            (b"", "invalid: client.malformed_envelope: envelope is not valid JSON"),
            (b"<html>\n<body>502</body>\n</html>", "invalid: client.malformed_envelope: XML"),
            (
                b'{"data":[1],"signature":"AA=="}',
                'invalid: client.malformed_envelope: envelope "data"',
            ),
        ],
        ids=["text", "empty", "html", "data_array"],
    )
    def test_garbage_envelope_is_refused_in_one_line(self, key_dir: Path, body, expected):
        """Something that is not an envelope at all exits 1 with one line naming the check."""
        result = run("envelope", "verify", "--key", key_dir / "public.key", input=body)
        assert result.exit_code == 1
        [line] = stderr_lines(result)
        assert line.startswith(expected)

    def test_garbage_payload_is_refused_in_one_line(self, key_dir: Path):
        """A payload that is not the encrypted wire object exits 1 with one line."""
        result = run("payload", "decrypt", "--key", key_dir / "private.key", input="garbage")
        assert result.exit_code == 1
        [line] = stderr_lines(result)
        assert line.startswith(
            "invalid: client.decryption_failed: encrypted payload is not valid JSON"
        )

    def test_unknown_format_is_a_usage_error(self, key_dir: Path):
        """An unknown --format is rejected by the option parser with exit 2."""
        result = run("envelope", "sign", "--key", key_dir / "private.key", "--format", "yaml")
        assert result.exit_code == 2
        assert "yaml" in result.stderr


def test_version_names_kiungo_and_its_crypto_libraries():
    """`kiungo version` prints kiungo's version and the crypto libraries it runs on."""
    result = run("version")
    assert result.exit_code == 0
    assert result.stdout.startswith(f"kiungo {__version__} (Python 3.")
    assert "coincurve" in result.stdout and "cryptography" in result.stdout


def test_installed_entry_point_verifies_and_refuses(vector_keys):
    """The installed `kiungo` script verifies a vector and refuses a bad one without a traceback."""
    exe = Path(sys.executable).with_name("kiungo")
    if not exe.exists():
        pytest.fail(f"{exe} is missing: run `make setup` (pip install -e .)")
    good = next(
        v
        for v in ENVELOPES
        if v["name"] == "request/secp256k1/swahili_unicode/json_stringify/highS"
    )
    public = vector_keys["consumer_k1"]["publicKeyB64"]
    ok = subprocess.run(
        [exe, "envelope", "verify", "--key", public, "-"],
        input=good["envelope"].encode(), capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == json.loads(good["signed_text"])
    bad = subprocess.run(
        [exe, "envelope", "verify", "--key", "/nonexistent/k.pem", "-"],
        input=b"garbage", capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.decode().splitlines() == [
        "error: --key: '/nonexistent/k.pem' is neither a file nor a key "
        "(key is neither PEM nor base64 DER (not valid base64))"
    ]
