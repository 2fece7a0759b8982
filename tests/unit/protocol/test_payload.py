"""Payload encryption (PROTOCOL.md §7): ECDH, HKDF-SHA256, AES-256-GCM with the tag first."""

from __future__ import annotations

import base64

import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from kiungo.protocol import (
    Curve,
    DecryptionFailed,
    InvalidKey,
    PrivateKey,
    decrypt,
    encrypt,
    encrypt_to_json,
    generate_private_key,
    load_public_key,
)

CURVES = [Curve.SECP256K1, Curve.P256]
RECIPIENTS = {curve: generate_private_key(curve) for curve in CURVES}
PLAINTEXT = '{"jina":"Zuhura Mwanaisha Salum","mkoa":"Dar es Salaam – Kinondoni ✓"}'


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def encrypt_independently(plaintext: bytes, recipient: PrivateKey, iv: bytes) -> dict[str, str]:
    """The wire object built straight from PROTOCOL.md §7 with cryptography's primitives."""
    crypto_curve = recipient.crypto_key.curve
    ephemeral = ec.generate_private_key(type(crypto_curve)())
    shared = ephemeral.exchange(ec.ECDH(), recipient.public_key.crypto_key)
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=bytes(32), info=b"aes-encryption").derive(
        shared
    )
    sealed = AESGCM(key).encrypt(iv, plaintext, None)  # ciphertext || tag
    pem = ephemeral.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "ephemeralKey": b64(pem),
        "iv": b64(iv),
        "encryptedData": b64(sealed[-16:] + sealed[:-16]),
    }


class TestRoundTrip:
    @pytest.mark.parametrize("curve", CURVES)
    def test_encrypt_then_decrypt_gives_the_plaintext(self, curve: Curve) -> None:
        """What is encrypted for a recipient decrypts with its private key, text or bytes."""
        recipient = RECIPIENTS[curve]
        assert decrypt(encrypt(PLAINTEXT, recipient.public_key), recipient) == PLAINTEXT.encode()
        assert decrypt(encrypt(b"\x00\xff", recipient.public_key), recipient) == b"\x00\xff"
        assert decrypt(encrypt(b"", recipient.public_key), recipient) == b""

    @pytest.mark.parametrize("curve", CURVES)
    def test_json_text_of_the_wire_object_decrypts(self, curve: Curve) -> None:
        """encrypt_to_json gives JSON text that decrypt takes as bytes or str."""
        recipient = RECIPIENTS[curve]
        text = encrypt_to_json(PLAINTEXT, recipient.public_key)
        assert sorted(orjson.loads(text)) == ["encryptedData", "ephemeralKey", "iv"]
        assert decrypt(text, recipient) == PLAINTEXT.encode()
        assert decrypt(text.decode(), recipient) == PLAINTEXT.encode()

    @pytest.mark.parametrize("curve", CURVES)
    def test_wire_object_has_the_connectors_form(self, curve: Curve) -> None:
        """The ephemeral key is base64 of PEM on the recipient's curve, the IV 12 bytes, and the
        data the 16-byte tag followed by the ciphertext."""
        recipient = RECIPIENTS[curve]
        wire = encrypt(PLAINTEXT, recipient.public_key)
        pem = base64.b64decode(wire["ephemeralKey"], validate=True)
        assert pem.startswith(b"-----BEGIN PUBLIC KEY-----\n")
        assert load_public_key(pem).curve is curve
        assert len(base64.b64decode(wire["iv"], validate=True)) == 12
        sealed = base64.b64decode(wire["encryptedData"], validate=True)
        assert len(sealed) == 16 + len(PLAINTEXT.encode())

    @pytest.mark.parametrize("curve", CURVES)
    def test_independent_construction_decrypts(self, curve: Curve) -> None:
        """A payload built from the specification with other code (tag first) decrypts."""
        recipient = RECIPIENTS[curve]
        wire = encrypt_independently(PLAINTEXT.encode(), recipient, bytes(range(12)))
        assert decrypt(wire, recipient) == PLAINTEXT.encode()

    def test_tag_last_layout_is_refused(self) -> None:
        """Ciphertext followed by the tag (the usual GCM layout) is not this protocol's form."""
        recipient = RECIPIENTS[Curve.SECP256K1]
        wire = encrypt_independently(PLAINTEXT.encode(), recipient, bytes(12))
        sealed = base64.b64decode(wire["encryptedData"])
        wire["encryptedData"] = b64(sealed[16:] + sealed[:16])
        with pytest.raises(DecryptionFailed, match="authentication tag does not match"):
            decrypt(wire, recipient)

    def test_fixed_ephemeral_and_iv_make_encryption_deterministic(self) -> None:
        """With the ephemeral key and IV given, encryption is repeatable (for test vectors)."""
        recipient = RECIPIENTS[Curve.P256]
        ephemeral = generate_private_key(Curve.P256)
        one = encrypt(PLAINTEXT, recipient.public_key, ephemeral=ephemeral, iv=bytes(12))
        two = encrypt(PLAINTEXT, recipient.public_key, ephemeral=ephemeral, iv=bytes(12))
        assert one == two
        assert decrypt(one, recipient) == PLAINTEXT.encode()

    def test_fresh_randomness_each_time(self) -> None:
        """Without fixed inputs, two encryptions of the same text differ."""
        recipient = RECIPIENTS[Curve.SECP256K1]
        one, two = (encrypt(PLAINTEXT, recipient.public_key) for _ in range(2))
        assert one["iv"] != two["iv"]
        assert one["ephemeralKey"] != two["ephemeralKey"]

    def test_ephemeral_key_on_another_curve_is_refused_when_encrypting(self) -> None:
        """An ephemeral key on a curve other than the recipient's is refused."""
        with pytest.raises(InvalidKey, match="recipient's curve"):
            encrypt(
                "x",
                RECIPIENTS[Curve.SECP256K1].public_key,
                ephemeral=generate_private_key(Curve.P256),
            )

    @settings(max_examples=20, deadline=None)
    @given(st.binary(max_size=4096))
    def test_any_bytes_round_trip(self, plaintext: bytes) -> None:
        """Any plaintext, empty or binary, decrypts to itself on both curves."""
        for recipient in RECIPIENTS.values():
            assert decrypt(encrypt(plaintext, recipient.public_key), recipient) == plaintext


class TestRefusals:
    @pytest.mark.parametrize("curve", CURVES)
    def test_wrong_recipient_key_fails(self, curve: Curve) -> None:
        """Another private key of the same curve cannot decrypt."""
        wire = encrypt(PLAINTEXT, RECIPIENTS[curve].public_key)
        with pytest.raises(DecryptionFailed, match="wrong key or altered payload"):
            decrypt(wire, generate_private_key(curve))

    @pytest.mark.parametrize("field", ["iv", "encryptedData"])
    def test_one_flipped_bit_fails(self, field: str) -> None:
        """Changing one bit of the IV, tag or ciphertext makes decryption fail."""
        recipient = RECIPIENTS[Curve.SECP256K1]
        wire = encrypt(PLAINTEXT, recipient.public_key)
        raw = bytearray(base64.b64decode(wire[field]))
        for position in {0, len(raw) - 1}:
            changed = bytearray(raw)
            changed[position] ^= 0x01
            with pytest.raises(DecryptionFailed, match="authentication tag does not match"):
                decrypt({**wire, field: b64(bytes(changed))}, recipient)

    def test_ephemeral_key_on_the_wrong_curve_is_named(self) -> None:
        """A P-256 ephemeral key sent to a secp256k1 recipient is refused, naming both curves."""
        p256_wire = encrypt(PLAINTEXT, RECIPIENTS[Curve.P256].public_key)
        with pytest.raises(
            DecryptionFailed, match="ephemeralKey is on p256, the recipient key on secp256k1"
        ):
            decrypt(p256_wire, RECIPIENTS[Curve.SECP256K1])

    def test_ephemeral_key_off_the_curve_is_refused(self) -> None:
        """An ephemeral public key whose point is not on its curve is not usable."""
        recipient = RECIPIENTS[Curve.SECP256K1]
        wire = encrypt(PLAINTEXT, recipient.public_key)
        der = generate_private_key(Curve.SECP256K1).public_key.der
        bad = der[:-1] + bytes([der[-1] ^ 0x01])
        pem = (
            b"-----BEGIN PUBLIC KEY-----\n"
            + base64.b64encode(bad)
            + b"\n-----END PUBLIC KEY-----\n"
        )
        with pytest.raises(
            DecryptionFailed, match=r"ephemeralKey is not a usable public key: .*not on its curve"
        ):
            decrypt({**wire, "ephemeralKey": b64(pem)}, recipient)

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"iv": "!!not base64!!"}, '"iv" is not valid base64'),
            ({"encryptedData": "***"}, '"encryptedData" is not valid base64'),
            ({"ephemeralKey": "%%%"}, '"ephemeralKey" is not valid base64'),
            ({"iv": b64(b"short")}, "iv must be 12 bytes, got 5"),
            ({"iv": b64(bytes(16))}, "iv must be 12 bytes, got 16"),
            ({"encryptedData": b64(bytes(15))}, "shorter than the 16-byte tag"),
            ({"ephemeralKey": b64(b"not a key")}, "ephemeralKey is not a usable public key"),
            ({"ephemeralKey": None}, 'no "ephemeralKey" string'),
            ({"iv": 12}, 'no "iv" string'),
            ({"encryptedData": ["x"]}, 'no "encryptedData" string'),
        ],
    )
    def test_malformed_field_is_refused_precisely(self, change: dict, message: str) -> None:
        """Each malformed field of the wire object is refused with the field and defect named."""
        recipient = RECIPIENTS[Curve.SECP256K1]
        wire = {**encrypt(PLAINTEXT, recipient.public_key), **change}
        with pytest.raises(DecryptionFailed) as caught:
            decrypt(wire, recipient)
        assert message in caught.value.message

    @pytest.mark.parametrize("missing", ["ephemeralKey", "iv", "encryptedData"])
    def test_missing_field_is_refused(self, missing: str) -> None:
        """A wire object lacking one of its three fields is refused, naming the field."""
        recipient = RECIPIENTS[Curve.P256]
        wire = encrypt(PLAINTEXT, recipient.public_key)
        del wire[missing]
        with pytest.raises(DecryptionFailed, match=f'no "{missing}" string'):
            decrypt(wire, recipient)

    @pytest.mark.parametrize(
        ("payload", "message"),
        [
            (b"not json", "not valid JSON"),
            ("", "not valid JSON"),
            (b"\xff\xfe", "not valid JSON"),
            ('{"iv":', "not valid JSON"),
            (b"[1, 2]", "must be a JSON object"),
            ('"text"', "must be a JSON object"),
            (b"null", "must be a JSON object"),
        ],
    )
    def test_non_json_or_non_object_payload_is_refused(
        self, payload: str | bytes, message: str
    ) -> None:
        """A payload that is not a JSON object is refused before any cryptography."""
        with pytest.raises(DecryptionFailed, match=message):
            decrypt(payload, RECIPIENTS[Curve.SECP256K1])

    def test_decryption_failure_is_a_client_error(self) -> None:
        """A bad payload is the sender's fault: a 422 client error."""
        assert DecryptionFailed.code == "client.decryption_failed"
        assert DecryptionFailed.status == 422
