//! Run with: cargo run -p example-wiki
//!
//! Serves the wiki on http://127.0.0.1:7310 (`WIKI_LISTEN` to change), with sessions in the
//! embedded store `./wiki-data/sessions.redb` and its keys beside it (`wiki-data/csrf.key`,
//! `wiki-data/keys/`, created on the first start), so sessions and forms survive a restart.
//! Every password is `wiki`.
//!
//! The cookies are Tessera's development preset (named `tessera`, not `Secure`) because the
//! example runs on plain http://localhost; behind HTTPS use `CookieConfig::default()`.

use tessera::Engine;
use tessera::cookie::CookieConfig;
use tessera_store_redb::RedbStore;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let engine = Engine::builder(RedbStore::open("wiki-data/sessions.redb")?)
        .with_cookie(CookieConfig::development())
        .build()?;
    let listen = std::env::var("WIKI_LISTEN").unwrap_or_else(|_| "127.0.0.1:7310".to_owned());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    #[allow(clippy::print_stdout)]
    {
        println!("wiki on http://{}", listener.local_addr()?);
    }
    axum::serve(listener, example_wiki::app(engine)).await?;
    Ok(())
}
