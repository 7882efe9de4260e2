<?php
// Builds `sessionJwt` tokens the way MediaWiki 1.45+ does, for the tests of the edge
// verifier (crates/server/tests/it/peers/mediawiki_edge.rs).
//
// MediaWiki: SessionManager::getJwtData() makes the base claims (iss = the canonical server,
// sub = "mw:<scope>:<central id>" or "mw:anon", iat, jti = base64_encode(random_bytes(16))),
// the GetSessionJwtData hook adds WikimediaCustomizations' `rlc`, and
// JwtSessionCookieHelper's overrides (iss, sxp = now + $wgSessionCookieJwtExpiration, jti)
// win through PHP's `+`, so the claims come in the order iss, sxp, jti, sub, iat, rlc, with
// no `exp` and no `sid`. RsaJwtCodec signs with lcobucci/jwt 4.1.5's RS256 signer:
// SimpleJwtBuilder writes the header {"typ":"JWT","alg":"RS256"} (no kid) and the claims
// with JoseEncoder (json_encode with JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE, then
// base64url without padding), and Signer\Rsa signs header.payload with
// openssl_sign(OPENSSL_ALGO_SHA256) under Key\InMemory::plainText($wgJwtPrivateKey).
// Debian's MediaWiki is 1.39 (no RsaJwtCodec, no lcobucci/jwt), so this file does exactly
// those steps with the same PHP functions.
//
// Input on stdin: {"key_file": PEM private key, "tokens": [{"canonical_server", "issuer",
// "scope", "id" (null: anonymous), "iat", "expiration", "rlc" (null: none), "exp" (optional,
// as MediaWiki's commented-out hard expiry would add)}]}. Output: a JSON list of tokens.

declare(strict_types=1);

function b64url(string $data): string
{
    return str_replace('=', '', strtr(base64_encode($data), '+/', '-_'));
}

function jose_json(array $data): string
{
    return json_encode($data, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR);
}

$in = json_decode(stream_get_contents(STDIN), true, 512, JSON_THROW_ON_ERROR);
$key = openssl_pkey_get_private(file_get_contents($in['key_file']));
if ($key === false) {
    fwrite(STDERR, "cannot read the private key\n");
    exit(1);
}
$out = [];
foreach ($in['tokens'] as $t) {
    $base = [
        'iss' => $t['canonical_server'],
        'sub' => $t['id'] === null ? 'mw:anon' : 'mw:' . $t['scope'] . ':' . $t['id'],
        'iat' => $t['iat'],
        'jti' => base64_encode(random_bytes(16)),
    ];
    if ($t['rlc'] !== null) {
        $base['rlc'] = $t['rlc'];
    }
    $overrides = [
        'iss' => $t['issuer'],
        'sxp' => $t['iat'] + $t['expiration'],
        'jti' => base64_encode(random_bytes(16)),
    ];
    if (isset($t['exp'])) {
        $overrides['exp'] = $t['exp'];
    }
    $claims = $overrides + $base;
    $input = b64url(jose_json(['typ' => 'JWT', 'alg' => 'RS256'])) . '.' . b64url(jose_json($claims));
    if (!openssl_sign($input, $signature, $key, OPENSSL_ALGO_SHA256)) {
        fwrite(STDERR, "openssl_sign failed\n");
        exit(1);
    }
    $out[] = $input . '.' . b64url($signature);
}
echo json_encode($out), "\n";
