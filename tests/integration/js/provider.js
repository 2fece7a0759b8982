'use strict';
// A provider system written with the unmodified npm connector govesb-connector-js, for
// kiungo's integration tests: it verifies what the bus forwards with the connector's
// verifyThenReturnData (esbPublicKey = the bus key) and answers with the connector's
// successResponse / failureResponse (signed with the provider's own private key).
//
// Usage: node provider.js '{"port": N, "privateKey": B64, "busPublicKey": B64}'
// Prints "listening N" once it accepts connections; exits when its stdin closes.
//
// Routes (POST; JSON or XML by the request's Content-Type):
//   /echo    success; esbBody = {provider: "js", apiCode, requestId, userId, received}
//            where `received` is the consumer's esbBody (for XML: its text, unescaped)
//   /refuse  failure with the message REFUSAL below
// A request that does not verify with the bus key gets HTTP 401 and a signed failure
// whose message is NOT_FROM_BUS.

const http = require('http');
const path = require('path');

const peers = process.env.KIUNGO_PEERS || path.resolve(__dirname, '../../../peers/node_modules');
const { GovEsbHelper } = require(path.join(peers, 'govesb-connector-js'));

const REFUSAL = 'Mtoa huduma wa JS amekataa: rekodi haipo 👎';
const NOT_FROM_BUS = 'request is not signed by the bus';

const config = JSON.parse(process.argv[2]);

function unescapeXml(text) {
    return text.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"')
        .replace(/&apos;/g, "'").replace(/&amp;/g, '&');
}

function xmlField(dataXml, tag) {
    const m = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(dataXml);
    return m ? unescapeXml(m[1]) : undefined;
}

function forwarded(dataString, format) {
    if (format === 'json') {
        const data = JSON.parse(dataString);
        return {
            apiCode: data.apiCode,
            requestId: data.requestId,
            userId: data.userId,
            received: data.esbBody
        };
    }
    return {
        apiCode: xmlField(dataString, 'apiCode'),
        requestId: xmlField(dataString, 'requestId'),
        userId: xmlField(dataString, 'userId'),
        received: xmlField(dataString, 'esbBody')
    };
}

async function answer(route, body, format) {
    const verifier = new GovEsbHelper({ esbPublicKey: config.busPublicKey });
    const responder = new GovEsbHelper({ clientPrivateKey: config.privateKey });
    let dataString = null;
    try {
        dataString = verifier.verifyThenReturnData(body, format);
    } catch {
        dataString = null;
    }
    if (dataString === null) {
        return [401, await responder.failureResponse(null, NOT_FROM_BUS, format)];
    }
    if (route === '/refuse') {
        return [200, await responder.failureResponse(null, REFUSAL, format)];
    }
    const reply = { provider: 'js', ...forwarded(dataString, format) };
    return [200, await responder.successResponse(JSON.stringify(reply), format)];
}

const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
        if (req.method !== 'POST' || !['/echo', '/refuse'].includes(req.url)) {
            res.writeHead(404).end();
            return;
        }
        const format = (req.headers['content-type'] || '').toLowerCase().includes('xml')
            ? 'xml'
            : 'json';
        try {
            const [status, text] = await answer(req.url, Buffer.concat(chunks).toString('utf8'), format);
            res.writeHead(status, { 'Content-Type': `application/${format}; charset=utf-8` });
            res.end(text);
        } catch (e) {
            res.writeHead(500).end(String(e));
        }
    });
});

server.listen(config.port, '127.0.0.1', () => {
    process.stdout.write(`listening ${server.address().port}\n`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
