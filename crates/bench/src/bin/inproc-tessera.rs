//! `inproc-tessera`: Tessera in-process through its tower layer, with the same routes and
//! answers as `peer-tower-sessions` (`/login`, `/resolve`, `/update`, cookie in the `Cookie`
//! header), so the example application's session read path can be measured side by side with
//! axum + tower-sessions.

use std::error::Error;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use clap::{Parser, ValueEnum};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tessera::cookie::CookieConfig;
use tessera::tower::{Session, SessionLayer};
use tessera::{Edits, Engine, Login, Stores};
use tessera_core::SessionStore;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StoreKind {
    Memory,
    Redb,
}

#[derive(Debug, Parser)]
struct Args {
    /// Where sessions live.
    #[arg(long, value_enum, default_value_t = StoreKind::Memory)]
    store: StoreKind,
    /// The redb file, with `--store redb`.
    #[arg(long, default_value = "inproc.redb")]
    path: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7320")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    let store: Arc<dyn SessionStore> = match args.store {
        StoreKind::Memory => Arc::new(tessera_store_memory::MemoryStore::new()),
        StoreKind::Redb => Arc::new(tessera_store_redb::RedbStore::open(&args.path)?),
    };
    let engine = Engine::builder(Stores::single(store))
        // Plain HTTP on loopback, like the peer.
        .with_cookie(CookieConfig::development())
        // A benchmark's sessions need not survive it.
        .ephemeral_keys()
        .build()?;
    let app = Router::new()
        .route("/login", post(login))
        .route("/resolve", post(resolve))
        .route("/update", post(update))
        .layer(SessionLayer::new(engine));
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    eprintln!("inproc-tessera listening on {}", listener.local_addr()?);
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

struct Failure(tessera::Error);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        eprintln!("session error: {}", self.0);
        self.0.into_response()
    }
}

impl From<tessera::Error> for Failure {
    fn from(e: tessera::Error) -> Self {
        Self(e)
    }
}

async fn login(session: Session, body: Option<Json<LoginBody>>) -> Result<StatusCode, Failure> {
    let id = body
        .and_then(|Json(b)| b.user)
        .and_then(|u| u["id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "bench".to_owned());
    session.login(Login::for_user(id)).await?;
    let mut edits = Edits::default();
    for (k, v) in [
        ("theme", json!("dark")),
        ("lang", json!("en")),
        ("k", json!(0)),
    ] {
        edits.set.insert(k.to_owned(), v);
    }
    session.update(edits).await?;
    Ok(StatusCode::OK)
}

async fn resolve(session: Session) -> Result<Json<Value>, Failure> {
    let Some(s) = session.load().await? else {
        return Ok(Json(json!({ "session": null })));
    };
    let Some(user) = s.record.user else {
        return Ok(Json(json!({ "session": null })));
    };
    Ok(Json(
        json!({ "session": { "user": { "id": user.id }, "data": s.record.data } }),
    ))
}

async fn update(session: Session, Json(body): Json<UpdateBody>) -> Result<Response, Failure> {
    if session.user().await?.is_none() {
        return Ok(StatusCode::UNAUTHORIZED.into_response());
    }
    let mut edits = Edits::default();
    edits.set.extend(body.set);
    session.update(edits).await?;
    let data = session
        .load()
        .await?
        .map(|s| s.record.data)
        .unwrap_or_default();
    Ok(Json(json!({ "session": { "data": data } })).into_response())
}
