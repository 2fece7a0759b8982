// kiungo conformance peer: verifies GovESB envelopes the way the Java GovEsbHelper does.
//
// The helper (copied into many institutions' code bases) verifies a bus envelope by
// re-serializing the parsed `data` with Jackson and checking SHA256withECDSA over the
// UTF-8 bytes of that text:
//   JSON: new JsonMapper().readTree(body).get("data").toString()
//   XML:  new XmlMapper().readTree(body) of the whole <esbresponse>/<esbrequest>, then
//         xmlMapper.writer().withRootName("data").writeValueAsString(dataNode)
// and the signature is the text of the `signature` node, decoded with Base64's MIME
// decoder; the public key is base64 X.509 SubjectPublicKeyInfo. This program reproduces
// exactly those steps (written for kiungo; no code taken from the helper).
//
// Input (stdin): a JSON array of {"id", "format": "json"|"xml", "envelope", "publicKey"}.
// Output (stdout): one JSON object per case and line:
//   {"id", "valid": bool, "signedText": what was verified over, "error": why it could not
//    verify (absent when the signature check itself ran), "xmlStack": StAX classes used}.
//
// Why secp256k1 is verified by hand: JDK 16 removed SunEC's native library, and with it
// every curve but P-256, P-384 and P-521. JDK 17's KeyFactory still decodes a secp256k1
// key (its curve parameters are known), but Signature.verify throws "Curve not supported:
// secp256k1" and no security property (jdk.disabled.namedCurves, jdk.sunec.disableNative)
// brings it back; Debian's OpenJDK 17 is no different. The published GovESB keys are
// secp256k1, so for that curve this program checks the standard ECDSA equation itself
// with BigInteger arithmetic, on the curve parameters the JDK's own key object carries.
// Every other curve goes through Signature.getInstance("SHA256withECDSA").

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.xml.XmlMapper;
import java.io.InputStream;
import java.io.PrintStream;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.security.KeyFactory;
import java.security.MessageDigest;
import java.security.PublicKey;
import java.security.Signature;
import java.security.interfaces.ECPublicKey;
import java.security.spec.ECField;
import java.security.spec.ECFieldFp;
import java.security.spec.ECParameterSpec;
import java.security.spec.ECPoint;
import java.security.spec.X509EncodedKeySpec;
import java.util.Base64;

public final class JacksonVerifier {

    // secp256k1: y^2 = x^3 + 7 over GF(2^256 - 2^32 - 977).
    private static final BigInteger SECP256K1_P = BigInteger.ONE.shiftLeft(256)
            .subtract(BigInteger.ONE.shiftLeft(32)).subtract(BigInteger.valueOf(977));

    private JacksonVerifier() {}

    public static void main(String[] args) throws Exception {
        ObjectMapper json = new JsonMapper();
        XmlMapper xml = new XmlMapper();
        String xmlStack = xml.getFactory().getXMLInputFactory().getClass().getName() + " / "
                + xml.getFactory().getXMLOutputFactory().getClass().getName();
        InputStream in = System.in;
        JsonNode cases = json.readTree(new String(in.readAllBytes(), StandardCharsets.UTF_8));
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        for (JsonNode item : cases) {
            ObjectNode result = json.createObjectNode();
            result.put("id", item.path("id").asText());
            try {
                String format = item.path("format").asText();
                String envelope = item.path("envelope").asText();
                String signedText;
                String signature;
                if (format.equals("json")) {
                    JsonNode node = json.readTree(envelope);
                    signedText = node.get("data").toString();
                    signature = node.get("signature").asText();
                } else if (format.equals("xml")) {
                    result.put("xmlStack", xmlStack);
                    JsonNode node = xml.readTree(envelope);
                    signedText = xml.writer().withRootName("data")
                            .writeValueAsString(node.get("data"));
                    signature = node.get("signature").asText();
                } else {
                    throw new IllegalArgumentException("unknown format " + format);
                }
                result.put("signedText", signedText);
                byte[] der = Base64.getMimeDecoder().decode(signature);
                byte[] message = signedText.getBytes(StandardCharsets.UTF_8);
                result.put("valid", verify(item.path("publicKey").asText(), message, der));
            } catch (Exception e) {
                result.put("valid", false);
                result.put("error", e.toString());
            }
            out.println(json.writeValueAsString(result));
        }
    }

    static boolean verify(String publicKeyB64, byte[] message, byte[] der) throws Exception {
        KeyFactory factory = KeyFactory.getInstance("EC");
        PublicKey key = factory.generatePublic(
                new X509EncodedKeySpec(Base64.getDecoder().decode(publicKeyB64)));
        ECParameterSpec params = ((ECPublicKey) key).getParams();
        if (isSecp256k1(params)) {
            return verifyByHand((ECPublicKey) key, message, der);
        }
        Signature verifier = Signature.getInstance("SHA256withECDSA");
        verifier.initVerify(key);
        verifier.update(message);
        try {
            return verifier.verify(der);
        } catch (java.security.SignatureException e) {
            return false; // a malformed DER signature: the helper reports it as invalid too
        }
    }

    static boolean isSecp256k1(ECParameterSpec params) {
        ECField field = params.getCurve().getField();
        return field instanceof ECFieldFp
                && ((ECFieldFp) field).getP().equals(SECP256K1_P)
                && params.getCurve().getA().signum() == 0
                && params.getCurve().getB().equals(BigInteger.valueOf(7));
    }

    // --- ECDSA verification for curves the JDK no longer signs with (see the top) ---------

    static boolean verifyByHand(ECPublicKey key, byte[] message, byte[] der) throws Exception {
        ECParameterSpec params = key.getParams();
        ECField field = params.getCurve().getField();
        if (!(field instanceof ECFieldFp)) {
            return false;
        }
        BigInteger p = ((ECFieldFp) field).getP();
        BigInteger a = params.getCurve().getA();
        BigInteger n = params.getOrder();
        BigInteger[] rs = parseDerSignature(der);
        if (rs == null) {
            return false;
        }
        BigInteger r = rs[0];
        BigInteger s = rs[1];
        if (r.signum() <= 0 || r.compareTo(n) >= 0 || s.signum() <= 0 || s.compareTo(n) >= 0) {
            return false;
        }
        byte[] digest = MessageDigest.getInstance("SHA-256").digest(message);
        BigInteger e = new BigInteger(1, digest);
        int excess = digest.length * 8 - n.bitLength();
        if (excess > 0) {
            e = e.shiftRight(excess);
        }
        BigInteger w = s.modInverse(n);
        BigInteger u1 = e.multiply(w).mod(n);
        BigInteger u2 = r.multiply(w).mod(n);
        ECPoint sum = linearCombination(params.getGenerator(), u1, key.getW(), u2, a, p);
        if (sum == ECPoint.POINT_INFINITY) {
            return false;
        }
        return sum.getAffineX().mod(n).equals(r);
    }

    // SEQUENCE { INTEGER r, INTEGER s } in strict DER; null when malformed.
    static BigInteger[] parseDerSignature(byte[] der) {
        if (der.length < 8 || der[0] != 0x30) {
            return null;
        }
        int[] pos = {1};
        int length = readLength(der, pos);
        if (length < 0 || pos[0] + length != der.length) {
            return null;
        }
        BigInteger r = readInteger(der, pos);
        BigInteger s = r == null ? null : readInteger(der, pos);
        if (s == null || pos[0] != der.length) {
            return null;
        }
        return new BigInteger[] {r, s};
    }

    private static int readLength(byte[] der, int[] pos) {
        if (pos[0] >= der.length) {
            return -1;
        }
        int first = der[pos[0]++] & 0xff;
        if (first < 0x80) {
            return first;
        }
        if (first != 0x81 || pos[0] >= der.length) {
            return -1; // signatures of 256-bit curves never need more than one length byte
        }
        int length = der[pos[0]++] & 0xff;
        return length < 0x80 ? -1 : length;
    }

    private static BigInteger readInteger(byte[] der, int[] pos) {
        if (pos[0] >= der.length || der[pos[0]++] != 0x02) {
            return null;
        }
        int length = readLength(der, pos);
        if (length <= 0 || pos[0] + length > der.length) {
            return null;
        }
        byte[] value = java.util.Arrays.copyOfRange(der, pos[0], pos[0] + length);
        pos[0] += length;
        boolean negative = (value[0] & 0x80) != 0;
        boolean padded = length > 1 && value[0] == 0 && (value[1] & 0x80) == 0;
        return negative || padded ? null : new BigInteger(1, value);
    }

    // Jacobian coordinates (X, Y, Z) stand for the affine point (X/Z^2, Y/Z^3) on
    // y^2 = x^3 + ax + b over GF(p); Z = 0 is the point at infinity. No inversion until
    // the end, and u1*G + u2*Q is computed in one pass over the bits (Shamir's trick).
    private static BigInteger[] jacobian(ECPoint point) {
        return new BigInteger[] {point.getAffineX(), point.getAffineY(), BigInteger.ONE};
    }

    private static BigInteger[] twice(BigInteger[] u, BigInteger a, BigInteger p) {
        if (u[2].signum() == 0 || u[1].signum() == 0) {
            return new BigInteger[] {BigInteger.ONE, BigInteger.ONE, BigInteger.ZERO};
        }
        BigInteger ySquared = u[1].multiply(u[1]).mod(p);
        BigInteger s = u[0].multiply(ySquared).shiftLeft(2).mod(p);
        BigInteger zSquared = u[2].multiply(u[2]).mod(p);
        BigInteger m = u[0].multiply(u[0]).multiply(BigInteger.valueOf(3))
                .add(a.multiply(zSquared).multiply(zSquared)).mod(p);
        BigInteger x = m.multiply(m).subtract(s.shiftLeft(1)).mod(p);
        BigInteger y = m.multiply(s.subtract(x))
                .subtract(ySquared.multiply(ySquared).shiftLeft(3)).mod(p);
        BigInteger z = u[1].multiply(u[2]).shiftLeft(1).mod(p);
        return new BigInteger[] {x, y, z};
    }

    private static BigInteger[] add(BigInteger[] u, BigInteger[] v, BigInteger a, BigInteger p) {
        if (u[2].signum() == 0) {
            return v;
        }
        if (v[2].signum() == 0) {
            return u;
        }
        BigInteger uz2 = u[2].multiply(u[2]).mod(p);
        BigInteger vz2 = v[2].multiply(v[2]).mod(p);
        BigInteger u1 = u[0].multiply(vz2).mod(p);
        BigInteger u2 = v[0].multiply(uz2).mod(p);
        BigInteger s1 = u[1].multiply(vz2).multiply(v[2]).mod(p);
        BigInteger s2 = v[1].multiply(uz2).multiply(u[2]).mod(p);
        if (u1.equals(u2)) {
            return s1.equals(s2)
                    ? twice(u, a, p)
                    : new BigInteger[] {BigInteger.ONE, BigInteger.ONE, BigInteger.ZERO};
        }
        BigInteger h = u2.subtract(u1).mod(p);
        BigInteger r = s2.subtract(s1).mod(p);
        BigInteger h2 = h.multiply(h).mod(p);
        BigInteger h3 = h2.multiply(h).mod(p);
        BigInteger u1h2 = u1.multiply(h2).mod(p);
        BigInteger x = r.multiply(r).subtract(h3).subtract(u1h2.shiftLeft(1)).mod(p);
        BigInteger y = r.multiply(u1h2.subtract(x)).subtract(s1.multiply(h3)).mod(p);
        BigInteger z = h.multiply(u[2]).multiply(v[2]).mod(p);
        return new BigInteger[] {x, y, z};
    }

    // u1*G + u2*Q as an affine point, or POINT_INFINITY.
    static ECPoint linearCombination(ECPoint g, BigInteger u1, ECPoint q, BigInteger u2,
            BigInteger a, BigInteger p) {
        BigInteger[] pg = jacobian(g);
        BigInteger[] pq = jacobian(q);
        BigInteger[] both = add(pg, pq, a, p);
        BigInteger[] acc = {BigInteger.ONE, BigInteger.ONE, BigInteger.ZERO};
        for (int i = Math.max(u1.bitLength(), u2.bitLength()) - 1; i >= 0; i--) {
            acc = twice(acc, a, p);
            boolean b1 = u1.testBit(i);
            boolean b2 = u2.testBit(i);
            if (b1 || b2) {
                acc = add(acc, b1 && b2 ? both : b1 ? pg : pq, a, p);
            }
        }
        if (acc[2].signum() == 0) {
            return ECPoint.POINT_INFINITY;
        }
        BigInteger zInverse = acc[2].modInverse(p);
        BigInteger x = acc[0].multiply(zInverse).multiply(zInverse).mod(p);
        BigInteger y = acc[1].multiply(zInverse.pow(3)).mod(p);
        return new ECPoint(x, y);
    }
}
