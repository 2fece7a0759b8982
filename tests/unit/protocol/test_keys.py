"""Key loading: the forms the connectors use are accepted, everything else refused by name."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from kiungo.protocol import (
    Curve,
    InvalidKey,
    PrivateKey,
    generate_private_key,
    load_private_key,
    load_public_key,
)

PEM = serialization.Encoding.PEM
DER = serialization.Encoding.DER
PKCS8 = serialization.PrivateFormat.PKCS8
SEC1 = serialization.PrivateFormat.TraditionalOpenSSL
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
NO_PASSWORD = serialization.NoEncryption()

# Field primes and curve OIDs, to build SubjectPublicKeyInfo by hand.
PRIMES = {
    Curve.SECP256K1: 2**256 - 2**32 - 977,
    Curve.P256: 2**256 - 2**224 + 2**192 + 2**96 - 1,
}
CURVE_OIDS = {Curve.SECP256K1: "1.3.132.0.10", Curve.P256: "1.2.840.10045.3.1.7"}
EC_PUBLIC_KEY_OID = "1.2.840.10045.2.1"


def _der(tag: int, body: bytes) -> bytes:
    assert len(body) < 128
    return bytes([tag, len(body)]) + body


def _oid(dotted: str) -> bytes:
    first, second, *rest = (int(part) for part in dotted.split("."))
    out = bytearray([40 * first + second])
    for arc in rest:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return _der(0x06, bytes(out))


def spki(curve: Curve, x: int, y: int) -> bytes:
    """A SubjectPublicKeyInfo for an uncompressed point, whether or not it is on the curve."""
    algorithm = _der(0x30, _oid(EC_PUBLIC_KEY_OID) + _oid(CURVE_OIDS[curve]))
    point = b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")
    return _der(0x30, algorithm + _der(0x03, b"\x00" + point))


def _private_pkcs8_pem(key) -> bytes:
    return key.private_bytes(PEM, PKCS8, NO_PASSWORD)


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


CURVES = [Curve.SECP256K1, Curve.P256]


class TestRefusedKeys:
    def test_rsa_keys_are_refused_by_name(self, rsa_key: rsa.RSAPrivateKey) -> None:
        """RSA private and public keys, PEM or base64 DER, are refused as RSA keys."""
        private_der = rsa_key.private_bytes(DER, PKCS8, NO_PASSWORD)
        public_der = rsa_key.public_key().public_bytes(DER, SPKI)
        for material in (_private_pkcs8_pem(rsa_key), base64.b64encode(private_der).decode()):
            with pytest.raises(InvalidKey, match="expected an EC key, got an RSA key"):
                load_private_key(material)
        for material in (rsa_key.public_key().public_bytes(PEM, SPKI), public_der):
            with pytest.raises(InvalidKey, match="expected an EC key, got an RSA key"):
                load_public_key(material)

    def test_secp384r1_keys_are_refused_as_an_unsupported_curve(self) -> None:
        """A key on secp384r1 is refused with the curve named and the supported ones listed."""
        key = ec.generate_private_key(ec.SECP384R1())
        message = "unsupported curve secp384r1: use secp256k1 or P-256"
        with pytest.raises(InvalidKey, match=message):
            load_private_key(_private_pkcs8_pem(key))
        with pytest.raises(InvalidKey, match=message):
            load_public_key(base64.b64encode(key.public_key().public_bytes(DER, SPKI)).decode())

    def test_ed25519_keys_are_refused_by_name(self) -> None:
        """Ed25519 keys are refused as Ed25519, not as unreadable data."""
        key = ed25519.Ed25519PrivateKey.generate()
        with pytest.raises(InvalidKey, match="got an Ed25519 key"):
            load_private_key(_private_pkcs8_pem(key))
        with pytest.raises(InvalidKey, match="got an Ed25519 key"):
            load_public_key(key.public_key().public_bytes(PEM, SPKI))

    @pytest.mark.parametrize("curve", CURVES)
    def test_public_point_off_the_curve_is_refused(self, curve: Curve) -> None:
        """A SubjectPublicKeyInfo whose point is not on its curve is refused as such."""
        off_curve = spki(curve, 1, 1)
        with pytest.raises(InvalidKey, match="public key point is not on its curve"):
            load_public_key(off_curve)
        with pytest.raises(InvalidKey, match="public key point is not on its curve"):
            load_public_key(base64.b64encode(off_curve).decode())

    @pytest.mark.parametrize("curve", CURVES)
    def test_real_point_with_y_nudged_is_refused(self, curve: Curve) -> None:
        """A genuine public key with y changed by one is no longer accepted."""
        numbers = generate_private_key(curve).public_key.crypto_key.public_numbers()
        good = spki(curve, numbers.x, numbers.y)
        assert load_public_key(good).der == good  # the hand-built form is the real one
        bad = spki(curve, numbers.x, (numbers.y + 1) % PRIMES[curve])
        with pytest.raises(InvalidKey, match="not on its curve"):
            load_public_key(bad)

    @pytest.mark.parametrize(
        ("material", "message"),
        [
            ("", "key is empty"),
            (b"", "key is empty"),
            ("  \n\t ", "key is empty"),
            ("not a key!", "not valid base64"),
            ("ufunguo wa siri – ", "non-ASCII"),
            ("Zm9vYmFy", "could not be parsed"),
            (b"\x30\x03\x02\x01\x01", "could not be parsed"),
            ("-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----\n", "could not be parsed"),
        ],
    )
    def test_garbage_is_refused_as_unreadable(self, material: str | bytes, message: str) -> None:
        """Empty, non-base64 and non-DER material is refused, saying what is wrong with it."""
        with pytest.raises(InvalidKey, match=message) as caught:
            load_public_key(material)
        assert "unsupported" not in caught.value.message

    @pytest.mark.parametrize("material", ["", "not a key!", "Zm9vYmFy", b"\x30\x03\x02\x01\x01"])
    def test_garbage_private_key_is_refused(self, material: str | bytes) -> None:
        """Garbage given as a private key is refused without blaming an algorithm or curve."""
        with pytest.raises(InvalidKey) as caught:
            load_private_key(material)
        assert "unsupported" not in caught.value.message

    @pytest.mark.parametrize("curve", CURVES)
    def test_private_key_given_as_public_key_is_refused(self, curve: Curve) -> None:
        """A private key passed where a public key is expected is named as a private key."""
        key = generate_private_key(curve)
        for material in (key.b64, key.pem, key.pkcs8_der):
            with pytest.raises(InvalidKey, match="expected a public key, got a private key"):
                load_public_key(material)

    @pytest.mark.parametrize("curve", CURVES)
    def test_public_key_given_as_private_key_is_refused(self, curve: Curve) -> None:
        """A public key passed where a private key is expected is named as a public key."""
        public = generate_private_key(curve).public_key
        for material in (public.b64, public.pem, public.der):
            with pytest.raises(InvalidKey, match="expected a private key, got a public key"):
                load_private_key(material)

    @pytest.mark.parametrize(
        ("encoding", "private_format"), [(PEM, PKCS8), (PEM, SEC1), (DER, PKCS8)]
    )
    def test_encrypted_private_key_is_refused_as_encrypted(self, encoding, private_format) -> None:
        """A password-protected private key (PKCS#8 or SEC1 PEM, PKCS#8 DER) is refused as such."""
        key = ec.generate_private_key(ec.SECP256K1())
        encrypted = key.private_bytes(
            encoding, private_format, serialization.BestAvailableEncryption(b"siri")
        )
        material = encrypted if encoding is PEM else base64.b64encode(encrypted).decode()
        with pytest.raises(InvalidKey, match="encrypted private keys are not supported"):
            load_private_key(material)


class TestAcceptedKeys:
    @pytest.mark.parametrize("curve", CURVES)
    def test_every_accepted_private_form_loads_the_same_key(self, curve: Curve) -> None:
        """PKCS#8 and SEC1, PEM, DER bytes, base64 DER and base64 of PEM all load one key."""
        reference = generate_private_key(curve)
        crypto = reference.crypto_key
        sec1_pem = crypto.private_bytes(PEM, SEC1, NO_PASSWORD)
        assert sec1_pem.startswith(b"-----BEGIN EC PRIVATE KEY-----")
        forms: list[str | bytes] = [
            reference.b64,
            reference.pem,
            reference.pem.encode(),
            sec1_pem,
            sec1_pem.decode(),
            reference.pkcs8_der,
            crypto.private_bytes(DER, SEC1, NO_PASSWORD),
            base64.b64encode(reference.pem.encode()).decode(),
            base64.b64encode(sec1_pem).decode(),
            "\n  " + reference.pem + "\n\n",
            "\n".join(reference.b64[i : i + 64] for i in range(0, len(reference.b64), 64)),
        ]
        for material in forms:
            loaded = load_private_key(material)
            assert loaded.b64 == reference.b64
            assert loaded.curve is curve

    @pytest.mark.parametrize("curve", CURVES)
    def test_every_accepted_public_form_loads_the_same_key(self, curve: Curve) -> None:
        """Base64 DER, PEM, DER bytes and base64 of PEM all load the same public key."""
        reference = generate_private_key(curve).public_key
        forms: list[str | bytes] = [
            reference.b64,
            reference.pem,
            reference.der,
            reference.b64.encode(),
            base64.b64encode(reference.pem.encode()).decode(),
        ]
        for material in forms:
            assert load_public_key(material) == reference

    @pytest.mark.parametrize("curve", CURVES)
    def test_der_bytes_ending_in_a_whitespace_byte_load(self, curve: Curve) -> None:
        """DER whose last byte happens to be 0x20, 0x0a or another whitespace value is data: the
        key loads, it is not trimmed into garbage."""
        crypto_curve = ec.SECP256K1() if curve is Curve.SECP256K1 else ec.SECP256R1()
        for secret in range(1, 2000):
            crypto = ec.derive_private_key(secret, crypto_curve)
            public_der = crypto.public_key().public_bytes(DER, SPKI)
            if public_der[-1:] in (b" ", b"\t", b"\n", b"\r", b"\x0b", b"\x0c"):
                break
        else:
            raise AssertionError("no key ending in a whitespace byte")
        assert load_public_key(public_der).der == public_der
        private_der = crypto.private_bytes(DER, PKCS8, NO_PASSWORD)
        assert private_der[-1:] == public_der[-1:]
        assert load_private_key(private_der).public_key.der == public_der

    def test_published_govesb_key_prefixes_are_what_kiungo_writes(self) -> None:
        """Public keys come out in the base64 DER form GovESB publishes for each curve."""
        assert generate_private_key(Curve.SECP256K1).public_key.b64.startswith(
            "MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAE"
        )
        assert generate_private_key(Curve.P256).public_key.b64.startswith(
            "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"
        )


class TestGeneratedKeys:
    @pytest.mark.parametrize("curve", CURVES)
    def test_generated_key_round_trips_through_base64_and_pem(self, curve: Curve) -> None:
        """A generated key written as base64 DER or PEM loads back to the same key."""
        key = generate_private_key(curve)
        assert key.curve is curve
        for material in (key.b64, key.pem):
            again = load_private_key(material)
            assert again.b64 == key.b64
            assert again.public_key == key.public_key
        for material in (key.public_key.b64, key.public_key.pem):
            assert load_public_key(material) == key.public_key

    @pytest.mark.parametrize("curve", CURVES)
    def test_loaded_key_signs_what_the_original_verifies(self, curve: Curve) -> None:
        """A key loaded from its base64 form signs data its original public key verifies."""
        key = generate_private_key(curve)
        signature = load_private_key(key.b64).sign(b"habari")
        assert key.public_key.verify(signature, b"habari")

    def test_generated_keys_differ(self) -> None:
        """Two generated keys are different keys."""
        assert generate_private_key().b64 != generate_private_key().b64

    def test_fingerprint_is_the_sha256_of_the_public_der(self) -> None:
        """The fingerprint is the hex SHA-256 of the SubjectPublicKeyInfo DER."""
        public = generate_private_key().public_key
        assert public.fingerprint == hashlib.sha256(public.der).hexdigest()

    def test_public_keys_compare_and_hash_by_value(self) -> None:
        """Two loads of one public key are equal and hash alike; another key is not equal."""
        public = generate_private_key().public_key
        again = load_public_key(public.pem)
        assert again == public
        assert len({public, again}) == 1
        assert public != generate_private_key().public_key
        assert public != public.b64

    @pytest.mark.parametrize("curve", CURVES)
    def test_repr_never_shows_the_secret(self, curve: Curve) -> None:
        """repr and str of a private key show the curve and fingerprint, never secret material."""
        key = generate_private_key(curve)
        secret = key.crypto_key.private_numbers().private_value
        secret_hex = f"{secret:064x}"
        pem_body = "".join(key.pem.splitlines()[1:-1])
        for text in (repr(key), str(key), f"{key}", repr([key])):
            assert secret_hex not in text.lower()
            assert str(secret) not in text
            assert key.b64 not in text
            assert pem_body[:40] not in text
            assert curve.value in text
            assert key.public_key.fingerprint[:16] in text

    def test_private_key_keeps_no_instance_dict(self) -> None:
        """A private key has no __dict__ into which debugging tools could dump the secret."""
        assert not hasattr(generate_private_key(), "__dict__")
        assert "__slots__" in vars(PrivateKey)
