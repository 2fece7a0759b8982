'use strict';
// Drives the unmodified npm connector govesb-connector-js against a live kiungo bus.
//
// stdin: a JSON array of calls; stdout: a JSON array of results in the same order. One
// node process makes a whole batch of calls, each through a new connector instance built
// from a credentials.json system object (plus any option the call adds, e.g. nidaUserId).
//
// Call: {id, method: "requestData" | "requestNida", options, apiCode, body, format}
// Result: {id, ok: true, value: what the connector's method returned (the verified data
//          string, or null when it could not verify), status: HTTP status of the engine's
//          answer, raw: the engine's answer as text}
//      or {id, ok: false, error}.
//
// The connector's own `fetch` option is the only seam used: it passes every call to the
// real fetch and keeps a copy of the engine's answer, so the test sees what came back.

const fs = require('fs');
const path = require('path');

const peers = process.env.KIUNGO_PEERS || path.resolve(__dirname, '../../../peers/node_modules');
const { GovEsbHelper } = require(path.join(peers, 'govesb-connector-js'));

const METHODS = new Set(['requestData', 'requestNida']);

async function call(op) {
    if (!METHODS.has(op.method)) throw new Error(`unknown method ${op.method}`);
    const seen = {};
    const fetchAndKeep = async (url, init) => {
        const res = await fetch(url, init);
        if (url !== op.options.esbTokenUrl) {
            seen.status = res.status;
            seen.raw = await res.clone().text();
        }
        return res;
    };
    const helper = new GovEsbHelper({ ...op.options, fetch: fetchAndKeep });
    const value = await helper[op.method](op.apiCode, op.body, op.format);
    return { value: value === undefined ? null : value, status: seen.status, raw: seen.raw };
}

async function main() {
    const ops = JSON.parse(fs.readFileSync(0, 'utf8'));
    const results = [];
    for (const op of ops) {
        try {
            results.push({ id: op.id, ok: true, ...(await call(op)) });
        } catch (e) {
            results.push({ id: op.id, ok: false, error: String((e && e.message) || e) });
        }
    }
    process.stdout.write(JSON.stringify(results));
}

main().catch((e) => {
    process.stderr.write(String((e && e.stack) || e));
    process.exit(1);
});
