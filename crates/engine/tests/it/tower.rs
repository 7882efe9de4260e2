//! The tower layer and extractors, driven with `Router::oneshot`: cookie attributes, removal
//! cookies, nothing on 5xx, malformed and bogus cookies, the missing layer, store errors.
#![cfg(feature = "tower")]

use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tessera::cookie::CookieConfig;
use tessera::keys::TokenKeys;
use tessera::tower::{Session, SessionLayer};
use tessera::{AnonymousMode, Engine, Lifetime, LiveSession, Login, SessionConfig, Stores};
use tessera_core::{ManualClock, SessionRecord, SessionStore, StoreKey, Timestamp, User};
use tessera_store_memory::MemoryStore;
use tower::ServiceExt;

const NOW: Timestamp = Timestamp::from_unix_secs(1_800_000_000);

fn user(id: &str) -> User {
    User {
        id: id.to_owned(),
        name: None,
        provider: None,
    }
}

async fn set_visit(session: Session) -> Result<String, tessera::Error> {
    let n: u64 = session.get("n").await?.unwrap_or(0);
    session.set("n", n + 1).await?;
    Ok((n + 1).to_string())
}

async fn read(session: Session) -> Result<String, tessera::Error> {
    Ok(session.get::<u64>("n").await?.unwrap_or(0).to_string())
}

async fn login(session: Session) -> Result<&'static str, tessera::Error> {
    session.login(Login::new(user("alice"))).await?;
    Ok("in")
}

async fn remember(session: Session) -> Result<&'static str, tessera::Error> {
    session
        .login(Login::new(user("alice")).with_lifetime(Lifetime::Remembered))
        .await?;
    Ok("in")
}

async fn logout(session: Session) -> Result<&'static str, tessera::Error> {
    session.logout().await?;
    Ok("out")
}

async fn fail(session: Session) -> impl IntoResponse {
    let _ = session.set("n", 99).await;
    (StatusCode::INTERNAL_SERVER_ERROR, "boom")
}

async fn many(session: Session) -> Result<&'static str, tessera::Error> {
    session.set("a", 1).await?;
    session.login(Login::new(user("bob"))).await?;
    session.set("b", 2).await?;
    Ok("ok")
}

async fn whoami(s: Option<LiveSession>) -> String {
    match s {
        Some(s) => s.record.user.map_or("anonymous".into(), |u| u.id),
        None => "nobody".into(),
    }
}

async fn must(s: LiveSession) -> String {
    s.reference()
}

async fn csrf(session: Session) -> Result<String, tessera::Error> {
    session.csrf_token("form").await
}

async fn check(session: Session, body: String) -> Result<String, tessera::Error> {
    Ok(session.verify_csrf(&body, "form").await?.to_string())
}

async fn keep_secret(session: Session, body: String) -> Result<String, tessera::Error> {
    session.set_secret("otp", &body).await?;
    Ok(session.secret::<String>("otp").await?.unwrap_or_default())
}

async fn read_secret(session: Session) -> Result<String, tessera::Error> {
    Ok(session.secret::<String>("otp").await?.unwrap_or_default())
}

fn engine_over(store: Arc<dyn SessionStore>) -> Arc<Engine> {
    engine_in(store, AnonymousMode::Client)
}

fn engine_in(store: Arc<dyn SessionStore>, anonymous: AnonymousMode) -> Arc<Engine> {
    Arc::new(
        Engine::builder(Stores::single(store))
            .with_config(SessionConfig::default().with_anonymous(anonymous))
            .with_clock(Arc::new(ManualClock::new(NOW)))
            .ephemeral_keys()
            .build()
            .unwrap(),
    )
}

fn routes() -> Router {
    Router::new()
        .route("/visit", post(set_visit))
        .route("/read", get(read))
        .route("/login", post(login))
        .route("/remember", post(remember))
        .route("/logout", post(logout))
        .route("/fail", post(fail))
        .route("/many", post(many))
        .route("/whoami", get(whoami))
        .route("/must", get(must))
        .route("/csrf", get(csrf))
        .route("/check", post(check))
        .route("/secret", post(keep_secret).get(read_secret))
}

fn app_over(store: Arc<dyn SessionStore>) -> Router {
    routes().layer(SessionLayer::new(engine_over(store)))
}

fn app() -> Router {
    app_over(Arc::new(MemoryStore::new()))
}

/// Anonymous sessions in the store (`[session] anonymous = "server"`).
fn server_app() -> Router {
    routes().layer(SessionLayer::new(engine_in(
        Arc::new(MemoryStore::new()),
        AnonymousMode::Server,
    )))
}

async fn call(
    app: &Router,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: &str,
) -> (StatusCode, Vec<String>, String) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let cookies = res
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, cookies, String::from_utf8(body.to_vec()).unwrap())
}

fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn a_new_session_sets_a_strict_cookie_and_reads_set_nothing() {
    let app = server_app();
    let (st, sc, body) = call(&app, "POST", "/visit", None, "").await;
    assert_eq!((st, body.as_str()), (StatusCode::OK, "1"));
    assert_eq!(sc.len(), 1, "{sc:?}");
    let c = &sc[0];
    assert!(c.starts_with("__Host-tessera=a"), "{c}");
    for attr in ["; Path=/", "; Secure", "; HttpOnly", "; SameSite=Lax"] {
        assert!(c.contains(attr), "{c} lacks {attr}");
    }
    assert!(!c.contains("Max-Age") && !c.contains("Domain"), "{c}");

    let cookie = pair(c);
    let (st, sc, body) = call(&app, "GET", "/read", Some(&cookie), "").await;
    assert_eq!((st, body.as_str()), (StatusCode::OK, "1"));
    assert!(sc.is_empty(), "a read changes no cookie: {sc:?}");
    let (_, sc, body) = call(&app, "POST", "/visit", Some(&cookie), "").await;
    assert_eq!(body, "2");
    assert!(
        sc.is_empty(),
        "an edit of a live session changes no cookie: {sc:?}"
    );
}

#[tokio::test]
async fn remember_me_and_logout_cookies() {
    let app = app();
    let (_, sc, _) = call(&app, "POST", "/remember", None, "").await;
    assert!(
        sc[0].contains(&format!("; Max-Age={}", 7 * 86400)),
        "{sc:?}"
    );
    let cookie = pair(&sc[0]);
    let (_, sc, body) = call(&app, "POST", "/logout", Some(&cookie), "").await;
    assert_eq!(body, "out");
    assert_eq!(
        sc,
        vec!["__Host-tessera=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Secure; HttpOnly; SameSite=Lax".to_owned()]
    );
    // The old cookie is dead, and its next use clears it again.
    let (_, sc, body) = call(&app, "GET", "/whoami", Some(&cookie), "").await;
    assert_eq!(body, "nobody");
    assert!(sc[0].contains("Max-Age=0"), "{sc:?}");
}

#[tokio::test]
async fn nothing_is_set_on_a_5xx() {
    let app = app();
    let (st, sc, _) = call(&app, "POST", "/fail", None, "").await;
    assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(sc.is_empty(), "{sc:?}");
}

#[tokio::test]
async fn several_operations_send_one_cookie() {
    let app = app();
    let (_, sc, _) = call(&app, "POST", "/many", None, "").await;
    assert_eq!(sc.len(), 1, "{sc:?}");
    assert!(
        sc[0].starts_with("__Host-tessera=u"),
        "the last (login) value: {sc:?}"
    );
    let (_, _, body) = call(&app, "GET", "/whoami", Some(&pair(&sc[0])), "").await;
    assert_eq!(body, "bob");
}

#[tokio::test]
async fn malformed_and_bogus_cookies_start_afresh_and_are_cleared() {
    let app = server_app();
    let bogus = format!("__Host-tessera=u{}", "A".repeat(43));
    for cookie in [
        "__Host-tessera=garbage",
        "__Host-tessera=1; __Host-tessera=2",
        bogus.as_str(),
    ] {
        let (st, sc, body) = call(&app, "GET", "/whoami", Some(cookie), "").await;
        assert_eq!((st, body.as_str()), (StatusCode::OK, "nobody"), "{cookie}");
        assert_eq!(sc.len(), 1, "{cookie}: {sc:?}");
        assert!(sc[0].contains("Max-Age=0"), "{cookie}: {sc:?}");
        // An edit with such a cookie creates a new session: never adopts the bogus handle.
        let (_, sc, body) = call(&app, "POST", "/visit", Some(cookie), "").await;
        assert_eq!(body, "1");
        assert!(sc[0].starts_with("__Host-tessera=a"), "{sc:?}");
        assert_ne!(pair(&sc[0]), cookie);
    }
}

#[tokio::test]
async fn extractors_without_the_layer_say_so() {
    let app = routes();
    let (st, _, body) = call(&app, "GET", "/read", None, "").await;
    assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("SessionLayer"), "{body}");
    let (st, _, body) = call(&app, "GET", "/whoami", None, "").await;
    assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("SessionLayer"), "{body}");
}

#[tokio::test]
async fn live_session_extractors() {
    let app = app();
    let (st, _, _) = call(&app, "GET", "/must", None, "").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (_, sc, _) = call(&app, "POST", "/login", None, "").await;
    let cookie = pair(&sc[0]);
    let (st, _, body) = call(&app, "GET", "/must", Some(&cookie), "").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body.len(), 43, "a reference: {body}");
    let (_, _, body) = call(&app, "GET", "/whoami", Some(&cookie), "").await;
    assert_eq!(body, "alice");
}

#[tokio::test]
async fn csrf_tokens_in_process() {
    let app = app();
    // A login form needs a token before login: one anonymous session is created for it.
    let (_, sc, token) = call(&app, "GET", "/csrf", None, "").await;
    assert_eq!(sc.len(), 1);
    let cookie = pair(&sc[0]);
    let (_, _, ok) = call(&app, "POST", "/check", Some(&cookie), &token).await;
    assert_eq!(ok, "true");
    let (_, _, forged) = call(&app, "POST", "/check", Some(&cookie), &"A".repeat(54)).await;
    assert_eq!(forged, "false");
    let (_, _, other) = call(&app, "POST", "/check", None, &token).await;
    assert_eq!(other, "false", "a token needs its own session");
}

/// A store that is down.
#[derive(Debug)]
struct Down;

#[async_trait]
impl SessionStore for Down {
    fn backend(&self) -> &'static str {
        "down"
    }
    async fn create(&self, _: &StoreKey, _: &SessionRecord) -> tessera_core::Result<()> {
        Err(tessera_core::Error::Timeout)
    }
    async fn load(
        &self,
        _: &StoreKey,
        _: Timestamp,
    ) -> tessera_core::Result<Option<SessionRecord>> {
        Err(tessera_core::Error::Timeout)
    }
    async fn save(
        &self,
        _: &StoreKey,
        _: u64,
        _: &SessionRecord,
        _: Timestamp,
    ) -> tessera_core::Result<()> {
        Err(tessera_core::Error::Timeout)
    }
    async fn delete(&self, _: &StoreKey, _: Timestamp) -> tessera_core::Result<()> {
        Err(tessera_core::Error::Timeout)
    }
    async fn list_user_sessions(
        &self,
        _: &str,
        _: Timestamp,
    ) -> tessera_core::Result<Vec<(StoreKey, SessionRecord)>> {
        Err(tessera_core::Error::Timeout)
    }
    async fn revoke_user(&self, _: &str, _: Timestamp) -> tessera_core::Result<()> {
        Err(tessera_core::Error::Timeout)
    }
    async fn user_revoked_at(&self, _: &str) -> tessera_core::Result<Option<Timestamp>> {
        Err(tessera_core::Error::Timeout)
    }
    async fn purge_expired(&self, _: Timestamp) -> tessera_core::Result<u64> {
        Err(tessera_core::Error::Timeout)
    }
}

#[tokio::test]
async fn store_errors_are_not_mistaken_for_logged_out() {
    let app = app_over(Arc::new(Down));
    let cookie = format!("__Host-tessera=u{}", "A".repeat(43));
    let (st, sc, body) = call(&app, "GET", "/whoami", Some(&cookie), "").await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(sc.is_empty());
    assert!(!body.contains("Timeout"), "5xx bodies are generic: {body}");
    let (st, sc, _) = call(&app, "POST", "/visit", Some(&cookie), "").await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
    assert!(sc.is_empty());
}

async fn status(session: Session) -> Result<&'static str, tessera::Error> {
    Ok(session.token_status().await?.as_str())
}

fn app_with_tokens() -> Router {
    let ring = tessera_token::Keyring::generate_at(
        NOW.unix_secs(),
        tessera_token::RotationPolicy::default(),
        &mut tessera_token::OsKeySource::default(),
    )
    .unwrap();
    let cookie = CookieConfig::default();
    let tokens = tessera::token::TokenSettings::new(
        tessera_token::Config::new("tessera-test"),
        TokenKeys::new(ring),
        &cookie,
    )
    .unwrap();
    let engine = Engine::builder(MemoryStore::new())
        .with_cookie(cookie)
        .with_tokens(tokens)
        .with_clock(Arc::new(ManualClock::new(NOW)))
        .ephemeral_keys()
        .build()
        .unwrap();
    routes()
        .route("/status", get(status))
        .layer(SessionLayer::new(engine))
}

/// With tokens on, a login sets two cookies (session and token); the layer keeps one
/// `Set-Cookie` per name and sends both.
#[tokio::test]
async fn session_and_token_cookies_travel_together() {
    let app = app_with_tokens();
    let (_, sc, _) = call(&app, "POST", "/login", None, "").await;
    let names: Vec<&str> = sc.iter().map(|c| c.split('=').next().unwrap()).collect();
    assert_eq!(names, ["__Host-tessera", "__Host-tessera-token"], "{sc:?}");
    let both = format!("{}; {}", pair(&sc[0]), pair(&sc[1]));
    let (_, sc2, body) = call(&app, "GET", "/status", Some(&both), "").await;
    assert_eq!(body, "ok");
    assert!(sc2.is_empty(), "{sc2:?}");
    // Without its token the session gets one back (no store write needed), and only that.
    let (_, sc3, body) = call(&app, "GET", "/status", Some(&pair(&sc[0])), "").await;
    assert_eq!(body, "user_session_without_token");
    assert_eq!(sc3.len(), 1);
    assert!(sc3[0].starts_with("__Host-tessera-token="), "{sc3:?}");
    // Several operations: login then logout sends each cookie once, both removed.
    let (_, sc4, _) = call(&app, "POST", "/many", None, "").await;
    assert_eq!(sc4.len(), 2, "{sc4:?}");
    let (_, sc5, _) = call(&app, "POST", "/logout", Some(&both), "").await;
    assert_eq!(sc5.len(), 2, "{sc5:?}");
    assert!(sc5.iter().all(|c| c.contains("Max-Age=0")), "{sc5:?}");
}

#[tokio::test]
async fn client_side_sessions_in_process_live_in_a_sealed_cookie() {
    let store = Arc::new(MemoryStore::new());
    let app = app_over(store.clone());
    let (_, sc, body) = call(&app, "POST", "/visit", None, "").await;
    assert_eq!(body, "1");
    assert_eq!(sc.len(), 1, "{sc:?}");
    assert!(sc[0].starts_with("__Host-tessera-anon=1."), "{sc:?}");
    for attr in ["; Path=/", "; Secure", "; HttpOnly", "; SameSite=Lax"] {
        assert!(sc[0].contains(attr), "{sc:?} lacks {attr}");
    }
    let cookie = pair(&sc[0]);
    let (_, sc, body) = call(&app, "GET", "/read", Some(&cookie), "").await;
    assert_eq!(body, "1");
    assert!(sc.is_empty(), "a read sets nothing: {sc:?}");
    // An edit re-seals the cookie (the state travels with it).
    let (_, sc, body) = call(&app, "POST", "/visit", Some(&cookie), "").await;
    assert_eq!(body, "2");
    assert!(sc[0].starts_with("__Host-tessera-anon="), "{sc:?}");
    let cookie = pair(&sc[0]);
    // Login: the data moves into the new session and the anonymous cookie is cleared.
    let (_, sc, _) = call(&app, "POST", "/login", Some(&cookie), "").await;
    let names: Vec<&str> = sc.iter().map(|c| c.split('=').next().unwrap()).collect();
    assert_eq!(names, ["__Host-tessera", "__Host-tessera-anon"], "{sc:?}");
    assert!(sc[1].contains("Max-Age=0"), "{sc:?}");
    let user = pair(&sc[0]);
    let (_, _, body) = call(&app, "GET", "/read", Some(&user), "").await;
    assert_eq!(body, "2", "carried over");
    let (_, _, body) = call(&app, "GET", "/whoami", Some(&user), "").await;
    assert_eq!(body, "alice");
    // The store saw the login only.
    let sessions = store.list_user_sessions("alice", NOW).await.unwrap();
    assert_eq!(sessions.len(), 1);
}

#[tokio::test]
async fn a_secret_in_process_spills_and_stays_out_of_cookies() {
    let app = app();
    let (_, sc, _) = call(&app, "POST", "/visit", None, "").await;
    let cookie = pair(&sc[0]);
    let (_, sc, body) = call(&app, "POST", "/secret", Some(&cookie), "s3cr3t-code").await;
    assert_eq!(body, "s3cr3t-code");
    assert!(sc.iter().all(|c| !c.contains("s3cr3t")), "{sc:?}");
    let names: Vec<&str> = sc.iter().map(|c| c.split('=').next().unwrap()).collect();
    assert_eq!(names, ["__Host-tessera", "__Host-tessera-anon"], "{sc:?}");
    assert!(
        sc[0].starts_with("__Host-tessera=a"),
        "a stored anonymous session: {sc:?}"
    );
    let handle = pair(&sc[0]);
    let (_, _, body) = call(&app, "GET", "/secret", Some(&handle), "").await;
    assert_eq!(body, "s3cr3t-code");
    let (_, _, body) = call(&app, "GET", "/read", Some(&handle), "").await;
    assert_eq!(body, "1", "the data came along");
}

#[tokio::test]
async fn a_bad_anonymous_cookie_in_process_starts_afresh_and_is_cleared() {
    let app = app();
    for cookie in [
        "__Host-tessera-anon=garbage",
        "__Host-tessera-anon=1.AAAAAAAAAAA.AAAA",
        "__Host-tessera-anon=1; __Host-tessera-anon=2",
    ] {
        let (st, sc, body) = call(&app, "GET", "/whoami", Some(cookie), "").await;
        assert_eq!((st, body.as_str()), (StatusCode::OK, "nobody"), "{cookie}");
        assert_eq!(sc.len(), 1, "{cookie}: {sc:?}");
        assert!(sc[0].starts_with("__Host-tessera-anon=;") && sc[0].contains("Max-Age=0"));
        let (st, sc, body) = call(&app, "POST", "/visit", Some(cookie), "").await;
        assert_eq!((st, body.as_str()), (StatusCode::OK, "1"), "{cookie}");
        assert_eq!(sc.len(), 1, "the new cookie replaces it: {sc:?}");
        assert!(sc[0].starts_with("__Host-tessera-anon=1."), "{sc:?}");
    }
}
