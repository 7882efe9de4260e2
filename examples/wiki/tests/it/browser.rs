//! The example wiki in headless Chromium: log in, edit with a valid CSRF token, see a forged
//! token refused, log out, and see the old cookie refused.

use tessera::Engine;
use tessera::cookie::CookieConfig;
use tessera_store_memory::MemoryStore;

use crate::webdriver::{Browser, Driver};

async fn serve_wiki() -> String {
    let engine = Engine::builder(MemoryStore::new())
        .with_cookie(CookieConfig::development())
        .ephemeral_keys()
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = example_wiki::app(engine);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_edit_forged_csrf_logout_in_chromium() {
    let base = serve_wiki().await;
    let driver = Driver::start().await;
    let b = Browser::open(&driver).await;

    // Anonymous visit: a login form with a CSRF token.
    b.goto(&format!("{base}/")).await;
    b.wait_for("the login form", |p| p.contains("Not logged in."))
        .await;

    // Log in.
    b.type_into("#user", "alice").await;
    b.type_into("#password", example_wiki::PASSWORD).await;
    b.click("#login").await;
    b.wait_for("the logged-in page", |p| {
        p.contains("Logged in as <b>alice</b>")
    })
    .await;
    let cookie = b.cookie("tessera").await.expect("the session cookie");
    assert_eq!(cookie["httpOnly"], true, "{cookie}");
    assert_eq!(cookie["sameSite"], "Lax", "{cookie}");
    let logged_in_value = cookie["value"].as_str().unwrap().to_owned();
    assert!(
        logged_in_value.starts_with('u'),
        "an authenticated handle: {cookie}"
    );

    // Edit with the form's valid CSRF token.
    b.type_into("#text", "Hello from Chromium").await;
    b.click("#save").await;
    b.wait_for("the edited page", |p| {
        p.contains("<div id=\"page\">Hello from Chromium</div>")
    })
    .await;

    // A forged token is refused and changes nothing.
    b.run_script(
        "document.querySelector('form[action=\"/edit\"] input[name=csrf]').value = 'A'.repeat(54);",
    )
    .await;
    b.type_into("#text", "Forged edit").await;
    b.click("#save").await;
    // Either the refusal or (a failure) the page with the forged text.
    let page = b
        .wait_for("the answer to the forged edit", |p| {
            p.contains("CSRF token is not valid") || p.contains("Forged edit</div>")
        })
        .await;
    assert!(page.contains("CSRF token is not valid"), "{page}");
    b.goto(&format!("{base}/")).await;
    let page = b
        .wait_for("the page", |p| p.contains("<div id=\"page\">"))
        .await;
    assert!(
        page.contains("Hello from Chromium") && !page.contains("Forged edit"),
        "{page}"
    );

    // Log out.
    b.click("#logout").await;
    b.wait_for("the logged-out page", |p| p.contains("Not logged in."))
        .await;

    // The old cookie is refused: put it back in the browser and reload.
    b.set_cookie(serde_json::json!({
        "name": "tessera", "value": logged_in_value, "path": "/", "httpOnly": true,
    }))
    .await;
    b.goto(&format!("{base}/")).await;
    let page = b.source().await;
    assert!(
        page.contains("Not logged in."),
        "the old cookie still works: {page}"
    );
    // And the browser was told to drop it (a new anonymous session replaced it).
    let now = b.cookie("tessera").await;
    assert_ne!(
        now.as_ref().and_then(|c| c["value"].as_str()),
        Some(logged_in_value.as_str())
    );

    b.close().await;
}
