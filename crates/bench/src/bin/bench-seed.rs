//! `bench-seed`: logs in N users on Tessera or on the tower-sessions peer and writes one
//! cookie (`name=value`) a line, for the wrk scripts in `crates/bench/wrk/`; or, with
//! `--target tokens`, mints N session tokens on Tessera (`POST /v1/tokens`, no store write)
//! and writes one a line, after checking the first at `/v1/verify`; or, with `--target kask`,
//! fills N MediaWiki-shaped keys (`enwiki%3AMWSession%3A<32 characters>`, as `RESTBagOStuff`
//! sends them) with 1.5 KB values through the Kask API and writes one key (percent-encoded,
//! as it goes in the path) a line, for `crates/bench/wrk/kask-mix.lua`.
//!
//! Before writing, it resolves the first session back and checks that it carries the user
//! and data it was given, so that a benchmark never measures "no session" answers.
//! Tessera's API key comes from `TESSERA_API_KEY` (not a flag: flags end up in `ps`).
//!
//! Run with: `cargo run --release -p tessera-bench --bin bench-seed -- --target tessera --url
//! http://127.0.0.1:7300 --count 1000 --out cookies.txt`

use std::error::Error;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use reqwest::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use serde_json::{Value, json};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    /// Tessera's `/v1/session/*` API (cookie in the JSON body).
    Tessera,
    /// The `peer-tower-sessions` application (cookie in the `Cookie` header).
    Peer,
    /// Tessera's `POST /v1/tokens`: writes one session token a line (for `/v1/verify`).
    Tokens,
    /// Tessera's Kask API (`POST /sessions/v1/{key}`): writes one key a line.
    Kask,
}

#[derive(Debug, Parser)]
#[command(about = "create sessions for Tessera's HTTP benchmark")]
struct Args {
    #[arg(long, value_enum)]
    target: Target,
    /// Base URL of the server.
    #[arg(long)]
    url: String,
    /// Sessions to create.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// File to write, one `name=value` cookie a line.
    #[arg(long)]
    out: PathBuf,
}

/// The data map every session holds: the peer's login sets it, Tessera gets it by `update`.
fn seed_data() -> Value {
    json!({ "theme": "dark", "lang": "en", "k": 0 })
}

/// `name=value` of a `Set-Cookie` value.
fn pair(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

struct Client {
    http: reqwest::Client,
    url: String,
    api_key: String,
}

impl Client {
    async fn tessera(&self, op: &str, body: Value) -> Result<Value> {
        let resp = self
            .http
            .post(format!("{}/v1/session/{op}", self.url))
            .header(AUTHORIZATION, format!("Bearer {}", self.api_key))
            .json(&body)
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            return Err(format!("{op}: {status}: {text}").into());
        }
        Ok(serde_json::from_str(&text)?)
    }

    /// First `set_cookie` entry of a Tessera answer, as `name=value`.
    /// Every cookie the answer sets (the session cookie, and the token cookie when tokens are
    /// on), as one `Cookie` header, so `resolve` is measured as a browser would send it.
    fn tessera_cookie(answer: &Value) -> Option<String> {
        let pairs: Vec<String> = answer["set_cookie"]
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .map(pair)
            .filter(|p| p.split_once('=').is_some_and(|(_, v)| !v.is_empty()))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    async fn tessera_session(&self, i: usize) -> Result<String> {
        let login = self
            .tessera(
                "login",
                json!({ "cookie": "", "user": { "id": format!("bench-{i}") } }),
            )
            .await?;
        let mut cookie = Self::tessera_cookie(&login).ok_or("login answered no set_cookie")?;
        let update = self
            .tessera("update", json!({ "cookie": cookie, "set": seed_data() }))
            .await?;
        if let Some(newer) = Self::tessera_cookie(&update) {
            cookie = newer;
        }
        Ok(cookie)
    }

    async fn peer_session(&self, i: usize) -> Result<String> {
        let resp = self
            .http
            .post(format!("{}/login", self.url))
            .json(&json!({ "user": { "id": format!("bench-{i}") } }))
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(format!("login: {}", resp.status()).into());
        }
        let set_cookie = resp
            .headers()
            .get(SET_COOKIE)
            .ok_or("login set no cookie")?
            .to_str()?;
        Ok(pair(set_cookie))
    }

    async fn resolve(&self, target: Target, cookie: &str) -> Result<Value> {
        match target {
            Target::Tessera | Target::Tokens | Target::Kask => {
                self.tessera("resolve", json!({ "cookie": cookie })).await
            }
            Target::Peer => {
                let resp = self
                    .http
                    .post(format!("{}/resolve", self.url))
                    .header(COOKIE, cookie)
                    .send()
                    .await?
                    .error_for_status()?;
                Ok(resp.json().await?)
            }
        }
    }
}

/// The size of a Kask value: about what MediaWiki keeps in a session.
const KASK_VALUE_BYTES: usize = 1536;

/// The `i`-th MediaWiki-shaped key, percent-encoded as `RESTBagOStuff` puts it in the path:
/// `enwiki%3AMWSession%3A` and 32 characters of `[0-9a-v]` (MediaWiki's session ids are base
/// 32), the same for an `i` on every run (SplitMix64 of `i`).
fn kask_key(i: usize) -> String {
    const DIGITS: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let mut state = i as u64;
    let mut id = String::with_capacity(32);
    while id.len() < 32 {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        for _ in 0..12 {
            if id.len() == 32 {
                break;
            }
            id.push(char::from(DIGITS[(z & 31) as usize]));
            z >>= 5;
        }
    }
    format!("enwiki%3AMWSession%3A{id}")
}

/// A 1.5 KB value for key `i` (printable, like MediaWiki's PHP-serialized sessions).
fn kask_value(i: usize) -> Vec<u8> {
    let head = format!("a:1:{{s:4:\"bench\";i:{i};}}");
    let mut v = head.into_bytes();
    v.resize(KASK_VALUE_BYTES, b'x');
    v
}

/// Fills `count` keys, 32 requests at a time, and checks the first reads back.
async fn fill_kask(client: &Client, count: usize) -> Result<Vec<String>> {
    let keys: Vec<String> = (1..=count).map(kask_key).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (n, key) in keys.iter().enumerate() {
        let (http, url, auth) = (
            client.http.clone(),
            format!("{}/sessions/v1/{key}", client.url),
            format!("Bearer {}", client.api_key),
        );
        let body = kask_value(n + 1);
        tasks.spawn(async move {
            let resp = http
                .post(url)
                .header(AUTHORIZATION, auth)
                .header("content-type", "application/octet-stream")
                .body(body)
                .send()
                .await?;
            if resp.status() != reqwest::StatusCode::CREATED {
                return Err(format!("POST answered {}", resp.status()).into());
            }
            Ok::<_, Box<dyn Error + Send + Sync>>(())
        });
        if tasks.len() >= 32 {
            tasks
                .join_next()
                .await
                .ok_or("no task")??
                .map_err(|e| e.to_string())?;
        }
    }
    while let Some(r) = tasks.join_next().await {
        r?.map_err(|e| e.to_string())?;
    }
    if let Some(first) = keys.first() {
        let got = client
            .http
            .get(format!("{}/sessions/v1/{first}", client.url))
            .header(AUTHORIZATION, format!("Bearer {}", client.api_key))
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        if got.as_ref() != kask_value(1).as_slice() {
            return Err("the first key read back a different value".into());
        }
    }
    Ok(keys)
}

/// Mints `count` tokens, 16 requests at a time, in order.
async fn mint_tokens(client: &Client, count: usize) -> Result<Vec<String>> {
    let client = std::sync::Arc::new(Client {
        http: client.http.clone(),
        url: client.url.clone(),
        api_key: client.api_key.clone(),
    });
    let mut out = Vec::with_capacity(count);
    let mut start = 1;
    while start <= count {
        let end = (start + 1000).min(count + 1);
        let mut tasks = tokio::task::JoinSet::new();
        for i in start..end {
            let c = client.clone();
            tasks.spawn(async move {
                let resp = c
                    .http
                    .post(format!("{}/v1/tokens", c.url))
                    .header(AUTHORIZATION, format!("Bearer {}", c.api_key))
                    .json(
                        &json!({ "sub": format!("bench-{i}"), "claims": { "rlc": "authed-user" } }),
                    )
                    .send()
                    .await?
                    .error_for_status()?;
                let v: Value = resp.json().await?;
                let t = v["token"].as_str().ok_or("no token")?.to_owned();
                Ok::<_, Box<dyn Error + Send + Sync>>((i, t))
            });
            if tasks.len() >= 16 {
                let done = tasks.join_next().await.ok_or("no task")??;
                out.push(done.map_err(|e| e.to_string())?);
            }
        }
        while let Some(r) = tasks.join_next().await {
            out.push(r?.map_err(|e| e.to_string())?);
        }
        start = end;
    }
    out.sort();
    Ok(out.into_iter().map(|(_, t)| t).collect())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let api_key = match args.target {
        Target::Tessera | Target::Tokens | Target::Kask => {
            std::env::var("TESSERA_API_KEY").map_err(|_| "TESSERA_API_KEY is not set")?
        }
        Target::Peer => String::new(),
    };
    let client = Client {
        http: reqwest::Client::new(),
        url: args.url.trim_end_matches('/').to_owned(),
        api_key,
    };
    if args.target == Target::Kask {
        let keys = fill_kask(&client, args.count).await?;
        let mut text = keys.join("\n");
        text.push('\n');
        std::fs::write(&args.out, text)?;
        eprintln!(
            "bench-seed: {} Kask keys filled, written to {}",
            keys.len(),
            args.out.display()
        );
        return Ok(());
    }
    if args.target == Target::Tokens {
        let tokens = mint_tokens(&client, args.count).await?;
        let first = tokens.first().ok_or("no tokens")?;
        let r = client
            .http
            .get(format!("{}/v1/verify", client.url))
            .bearer_auth(first)
            .send()
            .await?;
        let sub = r
            .headers()
            .get("x-tessera-subject")
            .and_then(|v| v.to_str().ok());
        if sub != Some("bench-1") {
            return Err(format!("the first token verified as {sub:?}").into());
        }
        let mut text = tokens.join("\n");
        text.push('\n');
        std::fs::write(&args.out, text)?;
        eprintln!(
            "bench-seed: {} tokens written to {}",
            tokens.len(),
            args.out.display()
        );
        return Ok(());
    }
    let mut cookies = Vec::with_capacity(args.count);
    for i in 1..=args.count {
        let cookie = match args.target {
            Target::Tessera | Target::Tokens | Target::Kask => client.tessera_session(i).await?,
            Target::Peer => client.peer_session(i).await?,
        };
        if cookie.contains(['"', '\\', '\n']) || !cookie.contains('=') {
            return Err(format!("unexpected cookie shape from login {i}").into());
        }
        cookies.push(cookie);
    }
    if let Some(first) = cookies.first() {
        let answer = client.resolve(args.target, first).await?;
        let session = &answer["session"];
        if session["user"]["id"] != "bench-1" || session["data"]["theme"] != "dark" {
            return Err(format!("resolving the first session gave {answer}").into());
        }
    }
    let mut text = cookies.join("\n");
    text.push('\n');
    std::fs::write(&args.out, text)?;
    eprintln!(
        "bench-seed: {} sessions written to {}",
        cookies.len(),
        args.out.display()
    );
    Ok(())
}
