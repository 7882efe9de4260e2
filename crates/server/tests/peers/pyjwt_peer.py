"""PyJWT as a peer in Tessera's tests: one JSON object in on stdin, one out on stdout.

Run by crates/server/tests/it/peers/mod.rs with the interpreter of the virtualenv that
scripts/install-peers sets up (PyJWT and cryptography pinned in requirements.txt).

Input ``{"ops": [op, ...]}``, output ``{"results": [result, ...]}`` in the same order:

- ``{"op": "versions"}`` -> ``{"pyjwt", "cryptography", "python"}``
- ``{"op": "verify", "token", "issuer", "algorithms", "jwks": {...}}`` verifies against a
  JWK set given as JSON (``PyJWKSet``), or with ``"jwks_url"`` instead of ``"jwks"``, against
  the set fetched by ``PyJWKClient``. -> ``{"ok": true, "header", "claims", "key_alg"}`` or
  ``{"ok": false, "error": "<exception class>", "message"}``.
- ``{"op": "sign", "alg", "headers", "claims", "key"}`` with ``"key"`` either
  ``{"pkcs8_der_file": PATH}`` (a private key file of Tessera's keyring) or
  ``{"generate": true}`` (a fresh key of the algorithm's type). ``"kid": true`` in
  ``"headers"`` puts in the key's RFC 7638 key id as Tessera derives it.
  -> ``{"token", "kid"}`` (``kid``: that derived id).

Nothing here decides whether a test passes: the Rust side checks the results.
"""

import base64
import hashlib
import json
import sys

import cryptography
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def derived_kid(private_key):
    """Tessera's key id: the first 16 characters of the base64url SHA-256 JWK thumbprint
    (RFC 7638) of the public key, computed here independently of Tessera."""
    public = private_key.public_key()
    if isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        members = {"crv": "Ed25519", "kty": "OKP", "x": b64u(raw)}
    elif isinstance(public, ec.EllipticCurvePublicKey):
        n = public.public_numbers()
        members = {
            "crv": "P-256",
            "kty": "EC",
            "x": b64u(n.x.to_bytes(32, "big")),
            "y": b64u(n.y.to_bytes(32, "big")),
        }
    elif isinstance(public, rsa.RSAPublicKey):
        n = public.public_numbers()
        members = {
            "e": b64u(n.e.to_bytes((n.e.bit_length() + 7) // 8, "big")),
            "kty": "RSA",
            "n": b64u(n.n.to_bytes((n.n.bit_length() + 7) // 8, "big")),
        }
    else:
        raise ValueError("unexpected key type %r" % type(public))
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    return b64u(hashlib.sha256(canonical).digest())[:16]


def generate(alg):
    if alg in ("EdDSA", "Ed25519"):
        return ed25519.Ed25519PrivateKey.generate()
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError("no key type for alg %r" % alg)


def sign(op):
    spec = op["key"]
    if "pkcs8_der_file" in spec:
        with open(spec["pkcs8_der_file"], "rb") as f:
            key = serialization.load_der_private_key(f.read(), password=None)
    elif spec.get("generate"):
        key = generate(op["alg"])
    else:
        raise ValueError("key: pkcs8_der_file or generate")
    kid = derived_kid(key)
    headers = dict(op.get("headers", {}))
    if headers.get("kid") is True:
        headers["kid"] = kid
    token = jwt.encode(op["claims"], key, algorithm=op["alg"], headers=headers)
    return {"token": token, "kid": kid}


def verify(op):
    token = op["token"]
    try:
        if "jwks_url" in op:
            client = jwt.PyJWKClient(op["jwks_url"], cache_keys=False, cache_jwk_set=False)
            key = client.get_signing_key_from_jwt(token)
        else:
            kid = jwt.get_unverified_header(token).get("kid")
            key = jwt.PyJWKSet.from_dict(op["jwks"])[kid]
        claims = jwt.decode(
            token,
            key,
            algorithms=op["algorithms"],
            issuer=op["issuer"],
            options={"require": ["exp", "iat", "iss", "sub"]},
        )
        header = jwt.get_unverified_header(token)
        return {"ok": True, "header": header, "claims": claims, "key_alg": key.algorithm_name}
    except (jwt.PyJWTError, KeyError) as e:
        return {"ok": False, "error": type(e).__name__, "message": str(e)}


def run(op):
    kind = op["op"]
    if kind == "versions":
        return {
            "pyjwt": jwt.__version__,
            "cryptography": cryptography.__version__,
            "python": sys.version.split()[0],
        }
    if kind == "verify":
        return verify(op)
    if kind == "sign":
        return sign(op)
    raise ValueError("unknown op %r" % kind)


def main():
    request = json.load(sys.stdin)
    json.dump({"results": [run(op) for op in request["ops"]]}, sys.stdout)


if __name__ == "__main__":
    main()
