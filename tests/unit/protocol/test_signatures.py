"""SHA-256 ECDSA signatures: DER in base64, high-S accepted, strict DER, exact bytes."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiungo.protocol import (
    Curve,
    InvalidSignature,
    MalformedSignature,
    PrivateKey,
    decode_signature,
    generate_private_key,
    sign,
    verify,
    verify_any,
)

ORDERS = {
    Curve.SECP256K1: 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141,
    Curve.P256: 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
}
CURVES = [Curve.SECP256K1, Curve.P256]
KEYS = {curve: generate_private_key(curve) for curve in CURVES}
DATA = b'{"apiCode":"NIDA-VERIFY-01","esbBody":{"nin":"19900101-11111-00001-23"}}'


def der_integer(value: int) -> bytes:
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")  # minimal, sign bit clear
    return b"\x02" + bytes([len(body)]) + body


def der_signature(r_field: bytes, s_field: bytes, extra: bytes = b"") -> bytes:
    body = r_field + s_field + extra
    return b"\x30" + bytes([len(body)]) + body


def split_signature(der: bytes) -> tuple[int, int]:
    r_len = der[3]
    r = int.from_bytes(der[4 : 4 + r_len], "big")
    s_len = der[5 + r_len]
    s = int.from_bytes(der[6 + r_len : 6 + r_len + s_len], "big")
    return r, s


def non_minimal(integer_field: bytes) -> bytes:
    """The same INTEGER with a needless leading zero byte."""
    body = integer_field[2:]
    return b"\x02" + bytes([len(body) + 1]) + b"\x00" + body


def signature_with_short_integers(key: PrivateKey) -> tuple[bytes, int, int]:
    """Data and a signature of it whose r and s fit 32 bytes with the sign bit clear."""
    for i in range(200):
        data = DATA + str(i).encode()
        r, s = split_signature(key.sign(data))
        if r < 2**255 and s < 2**255:
            return data, r, s
    raise AssertionError("no short signature in 200 tries")


def b64(der: bytes) -> str:
    return base64.b64encode(der).decode()


class TestSignAndVerify:
    @pytest.mark.parametrize("curve", CURVES)
    def test_signature_is_base64_of_der_and_verifies(self, curve: Curve) -> None:
        """sign() returns padded standard base64 of a DER signature that verify() accepts."""
        key = KEYS[curve]
        text = sign(key, DATA)
        der = base64.b64decode(text, validate=True)
        assert base64.b64encode(der).decode() == text
        assert der[0] == 0x30 and der[1] == len(der) - 2
        assert decode_signature(text) == der
        verify(key.public_key, DATA, text)

    def test_secp256k1_signatures_are_low_s(self) -> None:
        """kiungo's secp256k1 signatures are low-S, the form every verifier accepts."""
        key = KEYS[Curve.SECP256K1]
        for i in range(16):
            _, s = split_signature(key.sign(DATA + bytes([i])))
            assert s <= ORDERS[Curve.SECP256K1] // 2

    @pytest.mark.parametrize("curve", CURVES)
    def test_high_s_signature_verifies(self, curve: Curve) -> None:
        """A high-S signature, as OpenSSL and Java write half the time, verifies on both curves."""
        key = KEYS[curve]
        n = ORDERS[curve]
        r, s = split_signature(key.sign(DATA))
        s_low, s_high = min(s, n - s), max(s, n - s)
        assert s_high > n // 2
        for s_value in (s_low, s_high):
            der = der_signature(der_integer(r), der_integer(s_value))
            verify(key.public_key, DATA, b64(der))
            assert key.public_key.verify(der, DATA)

    @pytest.mark.parametrize("curve", CURVES)
    def test_one_changed_byte_of_the_data_fails(self, curve: Curve) -> None:
        """A signature is over the exact bytes: changing, adding or removing one byte fails."""
        key = KEYS[curve]
        signature = sign(key, DATA)
        variants = [DATA[:-1], DATA + b" ", b" " + DATA]
        for i in (0, len(DATA) // 2, len(DATA) - 1):
            changed = bytearray(DATA)
            changed[i] ^= 0x01
            variants.append(bytes(changed))
        for data in variants:
            with pytest.raises(InvalidSignature, match="does not match the signed data"):
                verify(key.public_key, data, signature)

    @pytest.mark.parametrize("curve", CURVES)
    def test_signature_by_another_key_fails(self, curve: Curve) -> None:
        """A signature made by another key of the same curve does not verify."""
        other = generate_private_key(curve)
        with pytest.raises(InvalidSignature, match="does not match"):
            verify(KEYS[curve].public_key, DATA, sign(other, DATA))

    def test_signature_of_the_other_curve_fails_cleanly(self) -> None:
        """A P-256 signature checked with a secp256k1 key, and back, fails as a mismatch."""
        k1, p256 = KEYS[Curve.SECP256K1], KEYS[Curve.P256]
        with pytest.raises(InvalidSignature):
            verify(k1.public_key, DATA, sign(p256, DATA))
        with pytest.raises(InvalidSignature):
            verify(p256.public_key, DATA, sign(k1, DATA))

    @settings(max_examples=25, deadline=None)
    @given(data=st.binary(max_size=2048), flip=st.integers(min_value=0))
    def test_any_bytes_sign_and_verify_and_any_bit_flip_fails(self, data: bytes, flip: int) -> None:
        """Any bytes verify under their own signature and fail once any single bit changes."""
        for key in KEYS.values():
            signature = sign(key, data)
            verify(key.public_key, data, signature)
            if data:
                changed = bytearray(data)
                changed[flip % len(data)] ^= 1 << (flip % 8)
                with pytest.raises(InvalidSignature):
                    verify(key.public_key, bytes(changed), signature)


class TestMalformedSignatures:
    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("", "signature is empty"),
            (b"", "signature is empty"),
            ("sahihi ✓", "non-ASCII"),
            ("not base64!", "not valid base64"),
            ("MEUCIQ", "not valid base64"),
            ("MAA=", "not a DER ECDSA signature (2 bytes"),
            (b64(b"\x31\x06\x02\x01\x01\x02\x01\x01"), "not a DER ECDSA signature"),
            (b64(b"\x30\x07\x02\x01\x01\x02\x01\x01"), "not a DER ECDSA signature"),
            (b64(b"\x30" + bytes([72]) + b"\x02" * 72), "not a DER ECDSA signature (74 bytes"),
        ],
    )
    def test_undecodable_signature_is_malformed(self, text: str | bytes, message: str) -> None:
        """Empty, non-base64 and non-DER signatures are refused as malformed before verifying."""
        with pytest.raises(MalformedSignature, match=message.replace("(", r"\(")):
            decode_signature(text)
        with pytest.raises(MalformedSignature):
            verify(KEYS[Curve.SECP256K1].public_key, DATA, text)

    @pytest.mark.parametrize("curve", CURVES)
    def test_bytes_after_the_der_sequence_are_refused(self, curve: Curve) -> None:
        """Bytes appended after the DER SEQUENCE make the signature malformed."""
        der = KEYS[curve].sign(DATA)
        with pytest.raises(MalformedSignature, match="not a DER ECDSA signature"):
            verify(KEYS[curve].public_key, DATA, b64(der + b"\x00"))

    @pytest.mark.parametrize("curve", CURVES)
    def test_strict_der_variants_of_a_valid_signature_are_refused(self, curve: Curve) -> None:
        """Re-encodings of a valid signature that are not strict DER are refused, saying why."""
        key = KEYS[curve]
        n = ORDERS[curve]
        data, r, s = signature_with_short_integers(key)
        verify(key.public_key, data, b64(der_signature(der_integer(r), der_integer(s))))
        r_bytes = r.to_bytes(32, "big")
        r_ok, s_ok = der_integer(r), der_integer(s)
        cases = {
            "r is negative": der_signature(
                b"\x02\x20" + bytes([r_bytes[0] | 0x80]) + r_bytes[1:], s_ok
            ),
            "r has a non-minimal encoding": der_signature(non_minimal(r_ok), s_ok),
            "s has a non-minimal encoding": der_signature(r_ok, non_minimal(s_ok)),
            "trailing bytes after the signature": der_signature(r_ok, s_ok, b"\x05\x00"),
            "r is not below the curve order": der_signature(der_integer(n), s_ok),
            "s is not below the curve order": der_signature(r_ok, der_integer(n + s)),
            "s is zero": der_signature(r_ok, b"\x02\x01\x00"),
            "r is zero": der_signature(b"\x02\x01\x00", s_ok),
            "r has a bad length": der_signature(b"\x02\x00", s_ok),
            "s is not a DER INTEGER": der_signature(r_ok, b"\x04" + s_ok[1:]),
        }
        for reason, der in cases.items():
            with pytest.raises(InvalidSignature) as caught:
                verify(key.public_key, data, b64(der))
            assert caught.value.message == f"signature is malformed: {reason}", der.hex()

    @pytest.mark.parametrize("curve", CURVES)
    def test_r_plus_n_is_not_accepted_for_r(self, curve: Curve) -> None:
        """r + n, which reduces to the same r modulo n, does not verify."""
        key = KEYS[curve]
        r, s = split_signature(key.sign(DATA))
        if (r + ORDERS[curve]).bit_length() > 256:
            r, s = split_signature(key.sign(DATA + b"."))
        der = der_signature(der_integer(r + ORDERS[curve]), der_integer(s))
        with pytest.raises(InvalidSignature, match="r is not below the curve order"):
            verify(key.public_key, DATA, b64(der))


class TestVerifyAny:
    @pytest.mark.parametrize("curve", CURVES)
    def test_the_matching_key_of_two_is_found(self, curve: Curve) -> None:
        """During key rotation either registered key verifies, and verify_any says which."""
        old, new = generate_private_key(curve), generate_private_key(curve)
        keys = [old.public_key, new.public_key]
        assert verify_any(keys, DATA, new.sign(DATA)) == new.public_key
        assert verify_any(keys, DATA, old.sign(DATA)) == old.public_key

    def test_keys_of_both_curves_may_be_mixed(self) -> None:
        """A system rotating from one curve to the other verifies with either key."""
        keys: list[PrivateKey] = [KEYS[Curve.P256], KEYS[Curve.SECP256K1]]
        publics = [k.public_key for k in keys]
        for key in keys:
            assert verify_any(publics, DATA, key.sign(DATA)) == key.public_key

    def test_all_wrong_keys_fail(self) -> None:
        """A signature matching none of the registered keys fails."""
        wrong = [generate_private_key().public_key, generate_private_key(Curve.P256).public_key]
        with pytest.raises(InvalidSignature, match="does not match the signed data"):
            verify_any(wrong, DATA, generate_private_key().sign(DATA))

    def test_no_registered_key_fails_saying_so(self) -> None:
        """With no registered key the failure says that no key is registered."""
        with pytest.raises(InvalidSignature, match="no public key is registered"):
            verify_any([], DATA, KEYS[Curve.SECP256K1].sign(DATA))

    def test_keys_may_be_any_iterable(self) -> None:
        """verify_any takes a generator, as a registry lookup may yield keys lazily."""
        key = KEYS[Curve.SECP256K1]
        found = verify_any((k for k in [key.public_key]), DATA, key.sign(DATA))
        assert found == key.public_key

    def test_malformed_der_is_explained_after_trying_every_key(self) -> None:
        """A malformed signature fails with its DER defect named, whichever keys were tried."""
        keys = [generate_private_key().public_key, generate_private_key(Curve.P256).public_key]
        der = der_signature(b"\x02\x01\x00", der_integer(5))
        with pytest.raises(InvalidSignature, match="r is zero"):
            verify_any(keys, DATA, der)
