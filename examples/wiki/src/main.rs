//! Run with: cargo run -p example-wiki
//!
//! Serves the wiki on http://127.0.0.1:7310 (`WIKI_LISTEN` to change), with sessions in the
//! embedded store `./wiki-data/sessions.redb`. Every password is `wiki`.
//!
//! The cookies are Tessera's development preset (named `tessera`, not `Secure`) because the
//! example runs on plain http://localhost; behind HTTPS use `CookieConfig::default()`.

use std::sync::Arc;

use tessera::cookie::CookieConfig;
use tessera::csrf::CsrfKey;
use tessera::metrics::Metrics;
use tessera::{Engine, SessionConfig, Stores};
use tessera_core::SystemClock;
use tessera_store_redb::RedbStore;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let store = Arc::new(RedbStore::open("wiki-data/sessions.redb")?);
    let engine = Engine::try_new(
        Stores::single(store),
        SessionConfig::default(),
        CookieConfig::development(),
        // A fresh key at every start: tokens of the previous run stop verifying. A real
        // application keeps its key (the `tessera` service keeps it in its data directory).
        CsrfKey::generate()?,
        Metrics::default(),
    )?;
    let listen = std::env::var("WIKI_LISTEN").unwrap_or_else(|_| "127.0.0.1:7310".to_owned());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    #[allow(clippy::print_stdout)]
    {
        println!("wiki on http://{}", listener.local_addr()?);
    }
    axum::serve(
        listener,
        example_wiki::app(Arc::new(engine), Arc::new(SystemClock)),
    )
    .await?;
    Ok(())
}
