"""The shared vectors (../shared/vectors): envelopes, keys and encrypted payloads made by Node."""

from __future__ import annotations

import pytest
from tests.conftest import load_vectors

from kiungo.errors import ClientError
from kiungo.protocol import (
    Curve,
    DecryptionFailed,
    ForbiddenXML,
    Format,
    InvalidSignature,
    MalformedSignature,
    decrypt,
    load_private_key,
    load_public_key,
    open_envelope,
    parse_envelope,
)

ENVELOPES = load_vectors("envelopes.json")["envelopes"]
KEYS = load_vectors("keys.json")["keys"]
ECIES = load_vectors("ecies.json")["vectors"]

VALID = [case for case in ENVELOPES if case["valid"]]
INVALID = [case for case in ENVELOPES if not case["valid"]]

# What each kind of broken vector must raise, and a fragment of its message.
EXPECTED_REFUSALS: dict[str, tuple[type[ClientError], str]] = {
    "tampered_body": (InvalidSignature, "does not match the signed data"),
    "tampered": (InvalidSignature, "does not match the signed data"),
    "wrong_key": (InvalidSignature, "does not match the signed data"),
    "truncated_signature": (MalformedSignature, "not a DER ECDSA signature"),
    "signature_not_base64": (MalformedSignature, "not valid base64"),
    "missing_signature": (MalformedSignature, 'no "signature" member'),
    "zero_r": (InvalidSignature, "r is zero"),
    "billion_laughs": (ForbiddenXML, "DTD"),
    "external_entity": (ForbiddenXML, "DTD"),
}
CURVE_NAMES = {"secp256k1": Curve.SECP256K1, "prime256v1": Curve.P256}


def _public(name: str):
    return load_public_key(KEYS[name]["publicKeyB64"])


class TestEnvelopeVectors:
    @pytest.mark.parametrize("case", VALID, ids=[c["name"] for c in VALID])
    def test_valid_envelope_parses_and_verifies_over_the_signed_text(self, case: dict) -> None:
        """A valid vector parses with its content type, verifies with the signer's key, and
        keeps exactly the bytes the signer signed."""
        body = case["envelope"].encode("utf-8")
        envelope = parse_envelope(body, case["content_type"])
        envelope.verify(_public(case["signer"]))
        if "signed_text" in case:
            assert envelope.signed == case["signed_text"].encode("utf-8")
        expected_format = Format.XML if "xml" in case["content_type"] else Format.JSON
        assert envelope.format is expected_format

    @pytest.mark.parametrize("case", VALID, ids=[c["name"] for c in VALID])
    def test_valid_envelope_is_recognised_without_a_content_type(self, case: dict) -> None:
        """Without a content type the format is sniffed from the body and the result is the same."""
        body = case["envelope"].encode("utf-8")
        with_type = parse_envelope(body, case["content_type"])
        sniffed = open_envelope(body, _public(case["signer"]))
        assert sniffed.signed == with_type.signed
        assert sniffed.data == with_type.data

    @pytest.mark.parametrize("case", INVALID, ids=[c["name"] for c in INVALID])
    def test_invalid_envelope_is_refused_with_a_precise_client_error(self, case: dict) -> None:
        """A broken vector is refused with the error class of its defect and a clear message."""
        kind = case["name"].rsplit("/", 1)[-1]
        assert kind in EXPECTED_REFUSALS, f"no expectation for the vector kind {kind!r}"
        error, fragment = EXPECTED_REFUSALS[kind]
        with pytest.raises(error) as caught:
            open_envelope(
                case["envelope"].encode("utf-8"), _public(case["signer"]), case["content_type"]
            )
        assert fragment in caught.value.message
        assert caught.value.code.startswith("client.")

    def test_every_curve_and_format_is_covered(self) -> None:
        """The vectors exercise both curves and both formats (a guard against a thinned file)."""
        curves = {KEYS[c["signer"]]["curve"] for c in VALID}
        formats = {"xml" in c["content_type"] for c in VALID}
        assert curves == {"secp256k1", "prime256v1"}
        assert formats == {True, False}


class TestKeyVectors:
    @pytest.mark.parametrize("name", sorted(KEYS))
    def test_key_loads_the_same_from_base64_der_and_pem(self, name: str) -> None:
        """Each vector key loads from base64 DER and from PEM to the same key."""
        record = KEYS[name]
        from_b64 = load_private_key(record["privateKeyB64"])
        from_pem = load_private_key(record["privateKeyPem"])
        assert from_b64.b64 == from_pem.b64 == record["privateKeyB64"]
        public_b64 = load_public_key(record["publicKeyB64"])
        public_pem = load_public_key(record["publicKeyPem"])
        assert public_b64 == public_pem == from_b64.public_key
        assert public_b64.b64 == record["publicKeyB64"]
        assert public_b64.curve is CURVE_NAMES[record["curve"]]

    @pytest.mark.parametrize("name", sorted(KEYS))
    def test_key_writes_the_same_pem_as_node(self, name: str) -> None:
        """kiungo's PEM of a vector key is byte for byte what Node wrote."""
        record = KEYS[name]
        key = load_private_key(record["privateKeyB64"])
        assert key.pem == record["privateKeyPem"]
        assert key.public_key.pem == record["publicKeyPem"]


class TestPayloadVectors:
    @pytest.mark.parametrize("case", ECIES, ids=[c["name"] for c in ECIES])
    def test_payload_vector_decrypts_or_is_refused(self, case: dict) -> None:
        """A valid encrypted vector decrypts to its plaintext; a tampered one is refused."""
        key = load_private_key(KEYS[case["recipient"]]["privateKeyB64"])
        if case["valid"]:
            assert decrypt(case["encrypted"], key) == case["plaintext"].encode("utf-8")
        else:
            with pytest.raises(DecryptionFailed, match="authentication tag does not match"):
                decrypt(case["encrypted"], key)
