//! `bare-hello`: axum `GET /` answering "hello", the reference baseline of DESIGN §10.
//!
//! Run with: `cargo run --release -p tessera-bench --bin bare-hello -- --listen 127.0.0.1:7302`

use std::error::Error;
use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "bare axum hello, the baseline of Tessera's HTTP benchmark")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7302")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    let app = Router::new().route("/", get(|| async { "hello" }));
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    eprintln!("bare-hello listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
