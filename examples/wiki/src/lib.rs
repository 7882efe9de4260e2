//! A tiny wiki on Tessera's tower layer: the application behind `cargo run -p example-wiki`.
//!
//! One page of text. Anyone can read it; logged-in users can edit it through a form protected
//! by a CSRF token, see their sessions, revoke one, log out everywhere, and log out. The
//! password of every user is `wiki` (a demonstration, not an authentication system).
//!
//! Every session operation is one call on [`tessera::tower::Session`].

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tessera::tower::{Session, SessionLayer};
use tessera::{Engine, Lifetime, Login};
use tessera_core::User;

/// The demonstration password of every user.
pub const PASSWORD: &str = "wiki";

/// The wiki's one page.
#[derive(Debug, Clone, Default)]
pub struct Wiki {
    page: Arc<Mutex<String>>,
}

impl Wiki {
    fn text(&self) -> String {
        self.page.lock().map(|p| p.clone()).unwrap_or_default()
    }

    fn set_text(&self, text: String) {
        if let Ok(mut p) = self.page.lock() {
            *p = text;
        }
    }
}

/// The application: routes plus Tessera's session layer over `engine`.
pub fn app(engine: Engine) -> Router {
    let wiki = Wiki {
        page: Arc::new(Mutex::new("Welcome to the wiki.".to_owned())),
    };
    Router::new()
        .route("/", get(page))
        .route("/login", post(login))
        .route("/edit", post(edit))
        .route("/logout", post(logout))
        .route("/sessions", get(sessions))
        .route("/sessions/revoke", post(revoke))
        .route("/sessions/revoke-all", post(revoke_all))
        .with_state(wiki)
        .layer(SessionLayer::new(engine))
}

type Result<T> = std::result::Result<T, tessera::Error>;

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn layout(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:sans-serif;max-width:40em;margin:2em auto}}\
         textarea{{width:100%;height:8em}}</style></head><body><h1>{t}</h1>{body}</body></html>",
        t = escape(title)
    ))
}

fn hidden_csrf(token: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(token)
    )
}

async fn page(State(wiki): State<Wiki>, session: Session) -> Result<Html<String>> {
    let text = escape(&wiki.text());
    let mut body = format!("<div id=\"page\">{text}</div><hr>");
    match session.user().await? {
        Some(u) => {
            let token = session.csrf_token("edit").await?;
            let logout = session.csrf_token("logout").await?;
            let _ = write!(
                body,
                "<p id=\"who\">Logged in as <b>{}</b> · <a href=\"/sessions\">your sessions</a></p>\
                 <form method=\"post\" action=\"/edit\">{}<textarea name=\"text\" id=\"text\">{text}</textarea>\
                 <button id=\"save\">Save</button></form>\
                 <form method=\"post\" action=\"/logout\">{}<button id=\"logout\">Log out</button></form>",
                escape(&u.id),
                hidden_csrf(&token),
                hidden_csrf(&logout),
            );
        }
        None => {
            let token = session.csrf_token("login").await?;
            let _ = write!(
                body,
                "<p id=\"who\">Not logged in.</p>\
                 <form method=\"post\" action=\"/login\">{}\
                 <label>User <input name=\"user\" id=\"user\"></label> \
                 <label>Password <input name=\"password\" id=\"password\" type=\"password\"></label> \
                 <label><input type=\"checkbox\" name=\"remember\" value=\"1\"> Remember me</label> \
                 <button id=\"login\">Log in</button></form>",
                hidden_csrf(&token)
            );
        }
    }
    Ok(layout("Wiki", &body))
}

/// The login form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    user: String,
    password: String,
    csrf: String,
    #[serde(default)]
    remember: Option<String>,
}

fn forbidden(why: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        layout("Forbidden", &format!("<p id=\"error\">{}</p>", escape(why))),
    )
        .into_response()
}

async fn login(session: Session, Form(f): Form<LoginForm>) -> Result<Response> {
    if !session.verify_csrf(&f.csrf, "login").await? {
        return Ok(forbidden(
            "The form's CSRF token is not valid. Reload the page.",
        ));
    }
    if f.password != PASSWORD || User::validate_id(&f.user).is_err() {
        return Ok(forbidden("Wrong user or password."));
    }
    let lifetime = if f.remember.is_some() {
        Lifetime::Remembered
    } else {
        Lifetime::Standard
    };
    session
        .login(Login::for_user(f.user).with_lifetime(lifetime))
        .await?;
    Ok(Redirect::to("/").into_response())
}

/// The edit form.
#[derive(Debug, Deserialize)]
pub struct EditForm {
    text: String,
    csrf: String,
}

async fn edit(
    State(wiki): State<Wiki>,
    session: Session,
    Form(f): Form<EditForm>,
) -> Result<Response> {
    if session.user().await?.is_none() {
        return Ok(forbidden("Log in to edit."));
    }
    if !session.verify_csrf(&f.csrf, "edit").await? {
        return Ok(forbidden(
            "The form's CSRF token is not valid. Reload the page.",
        ));
    }
    wiki.set_text(f.text);
    Ok(Redirect::to("/").into_response())
}

/// A form with only a CSRF token.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

async fn logout(session: Session, Form(f): Form<CsrfForm>) -> Result<Response> {
    if !session.verify_csrf(&f.csrf, "logout").await? {
        return Ok(forbidden(
            "The form's CSRF token is not valid. Reload the page.",
        ));
    }
    session.logout().await?;
    Ok(Redirect::to("/").into_response())
}

async fn sessions(session: Session) -> Result<Response> {
    let Some(current) = session.load().await? else {
        return Ok(Redirect::to("/").into_response());
    };
    if current.record.user.is_none() {
        return Ok(Redirect::to("/").into_response());
    }
    let token = session.csrf_token("sessions").await?;
    let mut rows = String::new();
    for s in session.sessions().await? {
        let r = s.reference();
        let mark = if r == current.reference() {
            " (this one)"
        } else {
            ""
        };
        let _ = write!(
            rows,
            "<li class=\"session\">created at {}{}\
             <form method=\"post\" action=\"/sessions/revoke\" style=\"display:inline\">{}\
             <input type=\"hidden\" name=\"reference\" value=\"{}\"><button>Revoke</button></form></li>",
            s.record.created_at.unix_secs(),
            mark,
            hidden_csrf(&token),
            escape(&r),
        );
    }
    let body = format!(
        "<ul id=\"sessions\">{rows}</ul>\
         <form method=\"post\" action=\"/sessions/revoke-all\">{}<button id=\"everywhere\">Log out everywhere</button></form>\
         <p><a href=\"/\">Back</a></p>",
        hidden_csrf(&token)
    );
    Ok(layout("Your sessions", &body).into_response())
}

/// The revoke form.
#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    reference: String,
    csrf: String,
}

async fn revoke(session: Session, Form(f): Form<RevokeForm>) -> Result<Response> {
    if !session.verify_csrf(&f.csrf, "sessions").await? {
        return Ok(forbidden(
            "The form's CSRF token is not valid. Reload the page.",
        ));
    }
    session.revoke(&f.reference).await?;
    Ok(Redirect::to("/sessions").into_response())
}

async fn revoke_all(session: Session, Form(f): Form<CsrfForm>) -> Result<Response> {
    if !session.verify_csrf(&f.csrf, "sessions").await? {
        return Ok(forbidden(
            "The form's CSRF token is not valid. Reload the page.",
        ));
    }
    session.logout_everywhere().await?;
    Ok(Redirect::to("/").into_response())
}
