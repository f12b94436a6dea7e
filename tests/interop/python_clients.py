"""Third-party Python OAuth clients against a running auth-broker, unmodified.

    python3 python_clients.py keygen DIR
    python3 python_clients.py TOKEN_URL CLIENT_ID CLIENT_SECRET [ALG:CLIENT_ID:KEY_PEM ...]

`keygen` writes an RSA and a P-256 key (rs256.pem, es256.pem) and their public JWK Sets
(rs256.jwks.json, es256.jwks.json) made by Authlib, to register private_key_jwt clients
with; each ALG:CLIENT_ID:KEY_PEM then runs Authlib's PrivateKeyJWT (RFC 7523) with it.

Uses requests-oauthlib (BackendApplicationClient) and Authlib (OAuth2Session with
client_secret_basic and client_secret_post), verifies each token with PyJWT against
the JWKS named by the RFC 8414 metadata, and calls token-info with it; then gets a DPoP
token with proofs PyJWT signs and checks its cnf.jkt.
oauthlib refuses plain http unless OAUTHLIB_INSECURE_TRANSPORT is set (its own
documented switch for local testing), so this sets it for the loopback test.
Prints 'N passed, N failed' and exits non-zero on any failure.
"""
import json
import os
import sys
import urllib.request

import jwt  # PyJWT
from authlib.integrations.requests_client import OAuth2Session
from oauthlib.oauth2 import BackendApplicationClient
from requests_oauthlib import OAuth2Session as RoSession

if sys.argv[1] == "keygen":
    from authlib.jose import JsonWebKey
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    out = sys.argv[2]
    for name, key in [
        ("rs256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("es256", ec.generate_private_key(ec.SECP256R1())),
    ]:
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        with open(os.path.join(out, name + ".pem"), "wb") as f:
            f.write(pem)
        public = JsonWebKey.import_key(pem).as_dict(is_private=False)
        with open(os.path.join(out, name + ".jwks.json"), "w") as f:
            json.dump({"keys": [public]}, f)
    sys.exit(0)

token_url, client_id, client_secret = sys.argv[1:4]
key_clients = [a.split(":", 2) for a in sys.argv[4:]]
os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")
base = token_url.rsplit("/auth-broker/", 1)[0]
passed, failed = 0, 0


def check(name, fn):
    global passed, failed
    try:
        fn()
        print(f"ok   {name}")
        passed += 1
    except Exception as e:  # noqa: BLE001 - report every failure
        print(f"FAIL {name}: {e!r} {getattr(e, 'description', '') or ''}")
        failed += 1


def get_json(url):
    with urllib.request.urlopen(url) as r:
        return json.load(r)


def decode(access_token):
    """The token's claims, verified by PyJWT against the broker's JWKS."""
    meta = get_json(base + "/.well-known/oauth-authorization-server")
    jwks = jwt.PyJWKSet.from_dict(get_json(meta["jwks_uri"].replace(meta["issuer"], base, 1)))
    header = jwt.get_unverified_header(access_token)
    assert header["typ"] == "at+jwt", header
    key = next(k for k in jwks.keys if k.key_id == header["kid"])
    return jwt.decode(
        access_token,
        key,
        algorithms=[header["alg"]],
        issuer=meta["issuer"],
        audience=meta["issuer"],
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
    )


def dpop_with_pyjwt():
    """DPoP (RFC 9449) with proofs PyJWT signs: a DPoP token whose cnf.jkt is the
    RFC 7638 thumbprint of the proof key (computed here), taken by token-info with a
    proof of the GET that carries ath."""
    import base64
    import hashlib
    import time
    import uuid

    import requests
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    numbers = key.public_key().public_numbers()
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    jwk = {"crv": "P-256", "kty": "EC", "x": b64(numbers.x.to_bytes(32, "big")), "y": b64(numbers.y.to_bytes(32, "big"))}
    thumbprint = b64(hashlib.sha256(json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode()).digest())

    def proof(method, url, token=None):
        claims = {"jti": str(uuid.uuid4()), "htm": method, "htu": url, "iat": int(time.time())}
        if token:
            claims["ath"] = b64(hashlib.sha256(token.encode()).digest())
        return jwt.encode(claims, key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": jwk})

    r = requests.post(
        token_url,
        auth=(client_id, client_secret),
        data={"grant_type": "client_credentials"},
        headers={"DPoP": proof("POST", token_url)},
    )
    body = r.json()
    assert r.status_code == 200 and body["token_type"] == "DPoP", body
    token = body["access_token"]
    claims = decode(token)
    assert claims["cnf"] == {"jkt": thumbprint}, claims
    info_url = base + "/auth-broker/token-info"
    r = requests.get(info_url, headers={"Authorization": "DPoP " + token, "DPoP": proof("GET", info_url, token)})
    assert r.status_code == 200 and r.json()["active"] is True, r.text
    r = requests.get(info_url, headers={"Authorization": "Bearer " + token})
    assert r.status_code == 401 and "Authorization: DPoP" in r.json()["error_description"], r.text


def verify(access_token, expected_client=None):
    meta = get_json(base + "/.well-known/oauth-authorization-server")
    jwks = jwt.PyJWKSet.from_dict(get_json(meta["jwks_uri"].replace(meta["issuer"], base, 1)))
    header = jwt.get_unverified_header(access_token)
    assert header["typ"] == "at+jwt", header
    key = next(k for k in jwks.keys if k.key_id == header["kid"])
    claims = jwt.decode(
        access_token,
        key,
        algorithms=[header["alg"]],
        issuer=meta["issuer"],
        audience=meta["issuer"],
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
    )
    assert claims["client_id"] == (expected_client or client_id), claims
    req = urllib.request.Request(base + "/auth-broker/token-info", headers={"Authorization": "Bearer " + access_token})
    with urllib.request.urlopen(req) as r:
        assert json.load(r)["active"] is True


def requests_oauthlib():
    session = RoSession(client=BackendApplicationClient(client_id=client_id))
    tok = session.fetch_token(token_url=token_url, client_id=client_id, client_secret=client_secret)
    assert tok["token_type"].lower() == "bearer" and tok["expires_in"] in (3599, 3600), tok
    verify(tok["access_token"])


def authlib(method):
    def run():
        session = OAuth2Session(client_id, client_secret, token_endpoint_auth_method=method)
        tok = session.fetch_token(token_url, grant_type="client_credentials")
        assert tok["expires_in"] in (3599, 3600), tok
        verify(tok["access_token"])
    return run


def authlib_wrong_secret():
    session = OAuth2Session(client_id, "wrong", token_endpoint_auth_method="client_secret_basic")
    try:
        session.fetch_token(token_url, grant_type="client_credentials")
    except Exception as e:  # Authlib raises OAuthError with the server's code
        assert "invalid_client" in str(e), e
        return
    raise AssertionError("a wrong secret was accepted")


def authlib_key(alg, pem_path):
    """What Authlib's PrivateKeyJWT takes: an RSA key as PEM text, any other as a key
    object of joserfc (Authlib's JOSE library)."""
    with open(pem_path) as f:
        pem = f.read()
    if alg.startswith("RS") or alg.startswith("PS"):
        return pem
    from joserfc.jwk import ECKey

    return ECKey.import_key(pem)


def authlib_private_key_jwt(alg, key_client, pem_path):
    def run():
        from authlib.oauth2.rfc7523 import PrivateKeyJWT

        key = authlib_key(alg, pem_path)
        session = OAuth2Session(key_client, key, token_endpoint_auth_method="private_key_jwt")
        session.register_client_auth_method(PrivateKeyJWT(token_url, alg=alg))
        tok = session.fetch_token(token_url, grant_type="client_credentials")
        assert tok["expires_in"] in (3599, 3600), tok
        verify(tok["access_token"], key_client)
    return run


def authlib_private_key_jwt_refused(alg, key_client, pem_path):
    def run():
        from authlib.oauth2.rfc7523 import PrivateKeyJWT

        key = authlib_key(alg, pem_path)
        # Signed right, but for another audience: the broker names the fault.
        session = OAuth2Session(key_client, key, token_endpoint_auth_method="private_key_jwt")
        session.register_client_auth_method(PrivateKeyJWT("https://elsewhere.example/token", alg=alg))
        try:
            session.fetch_token(token_url, grant_type="client_credentials")
        except Exception as e:  # Authlib raises OAuthError with the server's code
            said = f"{e} {getattr(e, 'description', '')}"
            assert "invalid_client" in said and "does not name this broker" in said, said
            return
        raise AssertionError("an assertion for another audience was accepted")
    return run


check("requests-oauthlib BackendApplicationClient", requests_oauthlib)
check("authlib client_secret_basic", authlib("client_secret_basic"))
check("authlib client_secret_post", authlib("client_secret_post"))
check("authlib sees invalid_client for a wrong secret", authlib_wrong_secret)
check("DPoP with PyJWT-made proofs, cnf.jkt checked by PyJWT", dpop_with_pyjwt)
for alg, key_client, pem_path in key_clients:
    check(f"authlib private_key_jwt {alg}", authlib_private_key_jwt(alg, key_client, pem_path))
    check(f"authlib private_key_jwt {alg}, wrong aud refused", authlib_private_key_jwt_refused(alg, key_client, pem_path))
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
