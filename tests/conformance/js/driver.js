'use strict';
// Drives the unmodified npm connector govesb-connector-js for kiungo's conformance tests.
//
// stdin: a JSON array of operations; stdout: a JSON array of results in the same order,
// each {"ok": true, "value": ...} or {"ok": false, "error": "..."}. One node process
// serves a whole batch, so a test suite starts node a handful of times, not per case.
//
// Only the connector's public methods are used. To see the exact envelope the connector
// sends, the helper gets a `fetch` option (its own seam) that records every call and
// answers with canned responses: a token for the token URL, the given text for the engine.
//
// Operations:
//   request   {method: requestData|requestNida|pushData, clientPrivateKey, esbPublicKey,
//              apiCode, body, format, nidaUserId?, engineResponse, clientId?, clientSecret?}
//             -> {calls: [{url, method, headers, body}], result: verifyThenReturnData output}
//   respond   {method: successResponse|failureResponse|asyncSuccessResponse|
//              asyncFailureResponse, clientPrivateKey, body, message?, format,
//              priorApiCode?} -> the envelope text the connector builds. With priorApiCode
//              the helper first makes a requestData call with that code (same instance).
//   verify    {esbPublicKey, body, format} -> verifyThenReturnData(body, format) (string|null)
//   sign      {clientPrivateKey, payload} -> signPayload(payload)
//   encrypt   {publicKey, plaintext} -> encrypt(plaintext, publicKey) (JSON text)
//   decrypt   {clientPrivateKey, payload} -> decrypt(payload) (plaintext)
//   reserialize {text} -> JSON.stringify(JSON.parse(text)) (node itself, no connector)
//   keygen    {curve} -> {privateKeyB64, publicKeyB64}: base64 PKCS#8 / SPKI DER from node

const fs = require('fs');
const path = require('path');
const crypto = require('crypto');

const peers = process.env.KIUNGO_PEERS || path.resolve(__dirname, '../../../peers/node_modules');
const { GovEsbHelper } = require(path.join(peers, 'govesb-connector-js'));

const TOKEN_URL = 'http://esb.test/gw/govesb-uaa/oauth/token';
const ENGINE_URL = 'http://esb.test/engine/esb';
const TOKEN = {
    access_token: 'tkn-0123456789',
    token_type: 'bearer',
    expires_in: 3600,
    scope: 'read write'
};

function recordingFetch(calls, engineResponse) {
    return async (url, init) => {
        calls.push({ url, method: init.method, headers: init.headers, body: init.body });
        if (url === TOKEN_URL) {
            return new Response(JSON.stringify(TOKEN), {
                status: 200,
                headers: { 'Content-Type': 'application/json' }
            });
        }
        return new Response(engineResponse, { status: 200 });
    };
}

function helperFor(op, calls, engineResponse) {
    return new GovEsbHelper({
        clientPrivateKey: op.clientPrivateKey,
        esbPublicKey: op.esbPublicKey,
        clientId: op.clientId || 'kiungo-test-client',
        clientSecret: op.clientSecret || 'siri-ya-mteja',
        esbTokenUrl: TOKEN_URL,
        esbEngineUrl: ENGINE_URL,
        nidaUserId: op.nidaUserId,
        fetch: recordingFetch(calls, engineResponse)
    });
}

const REQUESTS = new Set(['requestData', 'requestNida', 'pushData']);
const RESPONSES = new Set([
    'successResponse',
    'failureResponse',
    'asyncSuccessResponse',
    'asyncFailureResponse'
]);

async function run(op) {
    switch (op.op) {
        case 'request': {
            if (!REQUESTS.has(op.method)) throw new Error(`unknown request method ${op.method}`);
            const calls = [];
            const helper = helperFor(op, calls, op.engineResponse);
            const result = await helper[op.method](op.apiCode, op.body, op.format);
            return { calls, result };
        }
        case 'respond': {
            if (!RESPONSES.has(op.method)) throw new Error(`unknown response method ${op.method}`);
            const helper = helperFor(op, [], '{}');
            if (op.priorApiCode) {
                await helper.requestData(op.priorApiCode, '{}', 'json');
            }
            if (op.method.endsWith('FailureResponse') || op.method === 'failureResponse') {
                return helper[op.method](op.body, op.message, op.format);
            }
            return helper[op.method](op.body, op.format);
        }
        case 'verify':
            return new GovEsbHelper({ esbPublicKey: op.esbPublicKey }).verifyThenReturnData(
                op.body,
                op.format
            );
        case 'sign':
            return new GovEsbHelper({ clientPrivateKey: op.clientPrivateKey }).signPayload(op.payload);
        case 'encrypt':
            return new GovEsbHelper({}).encrypt(op.plaintext, op.publicKey);
        case 'decrypt':
            return new GovEsbHelper({ clientPrivateKey: op.clientPrivateKey }).decrypt(op.payload);
        case 'reserialize':
            return JSON.stringify(JSON.parse(op.text));
        case 'keygen': {
            const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', {
                namedCurve: op.curve,
                publicKeyEncoding: { type: 'spki', format: 'der' },
                privateKeyEncoding: { type: 'pkcs8', format: 'der' }
            });
            return {
                privateKeyB64: privateKey.toString('base64'),
                publicKeyB64: publicKey.toString('base64')
            };
        }
        default:
            throw new Error(`unknown operation ${op.op}`);
    }
}

async function main() {
    const ops = JSON.parse(fs.readFileSync(0, 'utf8'));
    const results = [];
    for (const op of ops) {
        try {
            const value = await run(op);
            results.push({ ok: true, value: value === undefined ? null : value });
        } catch (e) {
            results.push({ ok: false, error: String((e && e.message) || e) });
        }
    }
    process.stdout.write(JSON.stringify(results));
}

main().catch((e) => {
    process.stderr.write(String((e && e.stack) || e));
    process.exit(1);
});
