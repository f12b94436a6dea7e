// openid-client v6 (panva), unmodified, against a running auth-broker.
//
//   node openid_client.mjs keygen DIR
//   node openid_client.mjs ISSUER CLIENT_ID DIR
//
// `keygen` makes a P-256 key with WebCrypto and writes DIR/key.jwk (private) and
// DIR/jwks.json (its public JWK Set, to register the client with). The second form
// discovers the broker from its RFC 8414 metadata, runs clientCredentialsGrant with
// PrivateKeyJwt (RFC 7523), verifies the token with jose against the broker's JWKS,
// and checks that an assertion for another audience is refused; then gets a DPoP token
// (RFC 9449) with openid-client's own key and proofs, following the broker's nonce,
// verifies its cnf.jkt with jose, and calls token-info with it. Prints "N passed, N
// failed".
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as client from 'openid-client'
import * as jose from 'jose'

const [mode, ...rest] = process.argv.slice(2)

if (mode === 'keygen') {
  const [dir] = rest
  const { privateKey, publicKey } = await crypto.subtle.generateKey(
    { name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])
  const kid = 'node-1'
  const priv = { ...(await crypto.subtle.exportKey('jwk', privateKey)), kid }
  const pub = await crypto.subtle.exportKey('jwk', publicKey)
  writeFileSync(join(dir, 'key.jwk'), JSON.stringify(priv))
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [{ kty: pub.kty, crv: pub.crv, x: pub.x, y: pub.y, kid, alg: 'ES256', use: 'sig' }] }))
  process.exit(0)
}

const issuer = mode
const [clientId, dir] = rest
const jwk = JSON.parse(readFileSync(join(dir, 'key.jwk'), 'utf8'))
const key = await crypto.subtle.importKey('jwk', { ...jwk, kid: undefined }, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign'])
let passed = 0, failed = 0
async function check (name, fn) {
  try { await fn(); console.log(`ok   ${name}`); passed++ } catch (e) { console.log(`FAIL ${name}: ${e?.message} ${e?.error_description ?? e?.cause?.error_description ?? ''}`); failed++ }
}

// Discovery over plain http on the loopback interface needs openid-client's own switch.
const config = await client.discovery(new URL(issuer), clientId, undefined,
  client.PrivateKeyJwt({ key, kid: jwk.kid }),
  { execute: [client.allowInsecureRequests], algorithm: 'oauth2' })

let token
await check('openid-client clientCredentialsGrant with PrivateKeyJwt', async () => {
  const tokens = await client.clientCredentialsGrant(config)
  if (tokens.token_type.toLowerCase() !== 'bearer') throw new Error(`token_type ${tokens.token_type}`)
  if (tokens.expires_in < 3500) throw new Error(`expires_in ${tokens.expires_in}`)
  token = tokens.access_token
})

await check('jose verifies the token against the broker JWKS', async () => {
  const meta = config.serverMetadata()
  const jwks = jose.createRemoteJWKSet(new URL(meta.jwks_uri))
  const { payload, protectedHeader } = await jose.jwtVerify(token, jwks, { issuer: meta.issuer, audience: meta.issuer, typ: 'at+jwt' })
  if (payload.client_id !== clientId || protectedHeader.alg !== 'ES256') throw new Error(JSON.stringify(payload))
})

await check('a second grant makes a new assertion and works', async () => {
  const tokens = await client.clientCredentialsGrant(config)
  if (!tokens.access_token) throw new Error('no token')
})

await check('an assertion for another audience is refused with the reason', async () => {
  const other = new client.Configuration({ ...config.serverMetadata(), issuer: 'https://elsewhere.example', token_endpoint: config.serverMetadata().token_endpoint }, clientId, undefined, client.PrivateKeyJwt({ key, kid: jwk.kid }))
  client.allowInsecureRequests(other)
  try {
    await client.clientCredentialsGrant(other)
  } catch (e) {
    // The broker's 401 carries a Basic challenge (RFC 6749 §5.2 allows it), so
    // openid-client raises a challenge error; the body has the reason.
    const body = e?.response ? await e.response.clone().json().catch(() => ({})) : {}
    const said = `${e?.error ?? body.error} ${e?.error_description ?? body.error_description}`
    if (e?.status === 401 && said.includes('invalid_client') && said.includes('does not name this broker')) return
    throw new Error(`refused, but: ${e?.status} ${said} ${e?.message}`)
  }
  throw new Error('accepted')
})

// DPoP (RFC 9449) with openid-client's own proofs and key: the broker (started with
// --dpop-nonce) asks for its nonce first, which openid-client follows.
const dpopKey = await client.randomDPoPKeyPair('ES256')
const DPoP = client.getDPoPHandle(config, dpopKey)
let dpopToken
async function withNonceRetry (fn) {
  try {
    return await fn()
  } catch (e) {
    // RFC 9449 §8: the handle has remembered the DPoP-Nonce; one retry.
    if (e?.error === 'use_dpop_nonce' || e?.cause?.error === 'use_dpop_nonce') return await fn()
    throw e
  }
}
await check('openid-client clientCredentialsGrant with DPoP (and the server nonce)', async () => {
  const tokens = await withNonceRetry(() => client.clientCredentialsGrant(config, undefined, { DPoP }))
  if (tokens.token_type.toLowerCase() !== 'dpop') throw new Error(`token_type ${tokens.token_type}`)
  dpopToken = tokens.access_token
})

await check('jose verifies the DPoP token, and its cnf.jkt is the thumbprint of openid-client\'s key', async () => {
  const meta = config.serverMetadata()
  const jwks = jose.createRemoteJWKSet(new URL(meta.jwks_uri))
  const { payload } = await jose.jwtVerify(dpopToken, jwks, { issuer: meta.issuer, audience: meta.issuer, typ: 'at+jwt' })
  const jkt = await jose.calculateJwkThumbprint(await jose.exportJWK(dpopKey.publicKey))
  if (payload.cnf?.jkt !== jkt) throw new Error(`cnf ${JSON.stringify(payload.cnf)}, key ${jkt}`)
})

await check('token-info takes the DPoP token with openid-client\'s proof (ath, htu)', async () => {
  const url = new URL(`${config.serverMetadata().issuer}/auth-broker/token-info`)
  const r = await client.fetchProtectedResource(config, dpopToken, url, 'GET', undefined, undefined, { DPoP })
  const body = await r.json()
  if (r.status !== 200 || body.active !== true) throw new Error(`${r.status} ${JSON.stringify(body)}`)
})

await check('token-info refuses the DPoP token sent as a bearer token, saying why', async () => {
  const url = `${config.serverMetadata().issuer}/auth-broker/token-info`
  const r = await fetch(url, { headers: { authorization: `Bearer ${dpopToken}` } })
  const body = await r.json()
  if (r.status !== 401 || !String(body.error_description).includes('Authorization: DPoP')) throw new Error(`${r.status} ${JSON.stringify(body)}`)
})

console.log(`${passed} passed, ${failed} failed`)
process.exit(failed ? 1 : 0)
