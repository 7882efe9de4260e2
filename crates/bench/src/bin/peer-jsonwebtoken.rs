//! `peer-jsonwebtoken`: the `/v1/verify` peer of DESIGN §10, an axum application that checks
//! the same session-token cookie with the `jsonwebtoken` crate (EdDSA, `rust_crypto`) on every
//! request, as an application without Tessera would: the key from the issuer's JWKS, fetched
//! once at start-up; issuer and expiry checked; the subject and session passed back in the
//! same headers as Tessera's verifier; 401 when the token is missing or invalid (Tessera's
//! required mode).
//!
//! Run with: `cargo run --release -p tessera-bench --bin peer-jsonwebtoken -- --listen
//! 127.0.0.1:7303 --jwks-url http://127.0.0.1:7300/.well-known/jwks.json --issuer tessera`

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::Parser;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

#[derive(Debug, Parser)]
#[command(about = "axum + jsonwebtoken verifying a session-token cookie, the peer of /v1/verify")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7303")]
    listen: SocketAddr,
    /// Where the issuer publishes its keys.
    #[arg(long)]
    jwks_url: String,
    /// The `iss` tokens must have.
    #[arg(long, default_value = "tessera")]
    issuer: String,
    /// The token cookie's name.
    #[arg(long, default_value = "__Host-tessera-token")]
    cookie: String,
}

/// The claims the application reads (MediaWiki's plus `exp` and `sid`).
#[derive(Debug, Deserialize)]
#[allow(dead_code)] // deserialised as an application would, not all read
struct Claims {
    iss: String,
    sub: String,
    iat: i64,
    exp: i64,
    sxp: i64,
    jti: String,
    sid: String,
}

struct App {
    key: DecodingKey,
    validation: Validation,
    cookie: String,
}

fn token<'h>(headers: &'h HeaderMap, cookie: &str) -> Option<&'h str> {
    for v in headers.get_all(header::COOKIE) {
        let Ok(v) = v.to_str() else { continue };
        for pair in v.split(';') {
            if let Some((n, t)) = pair.split_once('=')
                && n.trim() == cookie
            {
                return Some(t.trim());
            }
        }
    }
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

async fn verify(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let claims = token(&headers, &app.cookie)
        .and_then(|t| jsonwebtoken::decode::<Claims>(t, &app.key, &app.validation).ok());
    match claims {
        Some(c) => {
            let (Ok(sub), Ok(sid)) = (
                HeaderValue::from_str(&c.claims.sub),
                HeaderValue::from_str(&c.claims.sid),
            ) else {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            };
            (
                StatusCode::OK,
                [
                    (HeaderName::from_static("x-tessera-subject"), sub),
                    (HeaderName::from_static("x-tessera-session"), sid),
                ],
            )
                .into_response()
        }
        // As Tessera's verifier in required mode: 401, so a benchmark counts failures.
        None => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
        )
            .into_response(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    let jwks: JwkSet = reqwest::get(&args.jwks_url)
        .await?
        .error_for_status()?
        .json()
        .await?;
    // The signing key is listed first (Tessera's JWKS is newest first; one key here).
    let jwk = jwks.keys.first().ok_or("the JWKS has no key")?;
    let key = DecodingKey::from_jwk(jwk)?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[args.issuer]);
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    let app = Arc::new(App {
        key,
        validation,
        cookie: args.cookie,
    });
    let router = Router::new().route("/verify", get(verify)).with_state(app);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    eprintln!("peer-jsonwebtoken listening on {}", listener.local_addr()?);
    axum::serve(listener, router).await?;
    Ok(())
}
