//! `peer-tower-sessions`: the axum + tower-sessions application that Tessera's `resolve` and
//! `update` are measured against (DESIGN §10).
//!
//! Routes, all `POST`:
//! - `/login`: starts a session holding a user and a small data map (the cookie is set by
//!   tower-sessions);
//! - `/resolve`: loads the session named by the `Cookie` header and answers its user and data
//!   as JSON, the work Tessera's `resolve` does;
//! - `/update`: loads the session, sets the keys of the JSON body `{"set":{"k":N}}` in its data
//!   map and saves it.
//!
//! Run with: `cargo run --release -p tessera-bench --bin peer-tower-sessions -- --store memory`

mod redis_store;

use std::error::Error;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use clap::{Parser, ValueEnum};
use fred::prelude::{ClientLike, Config, Pool};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tower_sessions::{Expiry, MemoryStore, Session, SessionManagerLayer, SessionStore};

use crate::redis_store::RedisStore;

const USER: &str = "user";
const DATA: &str = "data";

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StoreKind {
    Memory,
    Redis,
}

#[derive(Debug, Parser)]
#[command(about = "axum + tower-sessions peer for Tessera's HTTP benchmark")]
struct Args {
    /// Session store.
    #[arg(long, value_enum, default_value = "memory")]
    store: StoreKind,
    /// Redis URL, for `--store redis`.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Redis connections in the pool (tower-sessions-redis-store's example uses 6).
    #[arg(long, default_value_t = 6)]
    redis_pool: usize,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7301")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    match args.store {
        StoreKind::Memory => serve(args.listen, MemoryStore::default()).await,
        StoreKind::Redis => {
            let pool = Pool::new(
                Config::from_url(&args.redis_url)?,
                None,
                None,
                None,
                args.redis_pool,
            )?;
            // `init` connects every client and waits until they are ready.
            let _connections = pool.init().await?;
            serve(args.listen, RedisStore::new(pool)).await
        }
    }
}

async fn serve<S: SessionStore + Clone>(
    listen: SocketAddr,
    store: S,
) -> Result<(), Box<dyn Error>> {
    let sessions = SessionManagerLayer::new(store)
        // One hour idle lifetime. With `always_save` off (the default) a read does not write,
        // as in Tessera, where a read writes at most one renewal per half idle-lifetime.
        .with_expiry(Expiry::OnInactivity(time::Duration::hours(1)));
    let app = Router::new()
        .route("/login", post(login))
        .route("/resolve", post(resolve))
        .route("/update", post(update))
        .layer(sessions);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!(
        "peer-tower-sessions listening on {}",
        listener.local_addr()?
    );
    axum::serve(listener, app).await?;
    Ok(())
}

#[derive(Debug, Default, Deserialize)]
struct LoginBody {
    #[serde(default)]
    user: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct UpdateBody {
    #[serde(default)]
    set: Map<String, Value>,
}

/// Session errors become a 500, as tower-sessions' own extractor does.
struct Failure(tower_sessions::session::Error);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        eprintln!("session error: {}", self.0);
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    }
}

impl From<tower_sessions::session::Error> for Failure {
    fn from(e: tower_sessions::session::Error) -> Self {
        Self(e)
    }
}

async fn login(session: Session, body: Option<Json<LoginBody>>) -> Result<StatusCode, Failure> {
    let user = body
        .and_then(|Json(b)| b.user)
        .unwrap_or_else(|| json!({ "id": "bench" }));
    session.insert(USER, user).await?;
    session
        .insert(DATA, json!({ "theme": "dark", "lang": "en", "k": 0 }))
        .await?;
    Ok(StatusCode::OK)
}

async fn resolve(session: Session) -> Result<Json<Value>, Failure> {
    let Some(user) = session.get::<Value>(USER).await? else {
        return Ok(Json(json!({ "session": null })));
    };
    let data = session
        .get::<Value>(DATA)
        .await?
        .unwrap_or_else(|| json!({}));
    Ok(Json(json!({ "session": { "user": user, "data": data } })))
}

async fn update(session: Session, Json(body): Json<UpdateBody>) -> Result<Response, Failure> {
    if session.get::<Value>(USER).await?.is_none() {
        return Ok(StatusCode::UNAUTHORIZED.into_response());
    }
    let mut data = session
        .get::<Map<String, Value>>(DATA)
        .await?
        .unwrap_or_default();
    data.extend(body.set);
    session.insert(DATA, &data).await?;
    // tower-sessions saves the modified record after the handler returns.
    Ok(Json(json!({ "session": { "data": data } })).into_response())
}
