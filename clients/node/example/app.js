// An example Express app on Tessera sessions (tessera-sessions/express): log in, edit a note
// behind a CSRF token, list your sessions and revoke one, log out. Run it with server.js.

import express from "express";
import { tessera } from "tessera-sessions/express";

/** The demo's users, all with the password below (a real app checks a password hash). */
export const PASSWORD = "correct horse battery staple";
export const USERS = new Map([
  ["alice", PASSWORD],
  ["bob", PASSWORD],
  ["carol", PASSWORD],
]);

const escape = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

const page = (title, body) => `<!doctype html>
<html><head><meta charset="utf-8"><title>${escape(title)}</title></head>
<body>
<h1>${escape(title)}</h1>
${body}
</body></html>
`;

const hidden = (token) => `<input type="hidden" name="csrf" value="${escape(token)}">`;

const ago = (unix) => new Date(unix * 1000).toISOString().replace(".000Z", "Z");

/**
 * The app.
 * @param {object} options the middleware's options (`{ url, apiKey }` or `{ client }`)
 */
export function createApp(options) {
  const app = express();
  app.disable("x-powered-by");
  app.use(express.urlencoded({ extended: false, limit: "16kb" }));
  app.use(tessera(options));

  app.get("/", async (req, res) => {
    const user = await req.session.user();
    res.set("Cache-Control", "no-store");
    if (!user) {
      const csrf = await req.session.csrfToken("login");
      const error = req.query.error ? `<p id="error">${escape(req.query.error)}</p>` : "";
      return res.send(
        page(
          "Tessera notes",
          `<p>Not logged in.</p>${error}
<form method="post" action="/login">${hidden(csrf)}
<label>User <input id="user" name="user"></label>
<label>Password <input id="password" name="password" type="password"></label>
<label><input id="remember" name="remember" type="checkbox" value="1"> Remember me</label>
<button id="login">Log in</button>
</form>`,
        ),
      );
    }
    const [note, edit, manage, sessions] = await Promise.all([
      req.session.get("note"),
      req.session.csrfToken("edit"),
      req.session.csrfToken("manage"),
      req.session.sessions(),
    ]);
    const rows = sessions
      .map(
        (s) => `<li class="session" data-ref="${escape(s.ref)}">${s.current ? "<b>this session</b>" : "another session"},
since ${ago(s.created_at)}${s.remember ? ", remembered" : ""}
<form method="post" action="/sessions/revoke" style="display:inline">${hidden(manage)}
<input type="hidden" name="ref" value="${escape(s.ref)}"><button class="revoke">Revoke</button></form></li>`,
      )
      .join("\n");
    res.send(
      page(
        "Tessera notes",
        `<p>Logged in as <b>${escape(user.id)}</b>.</p>
<div id="note">${escape(note ?? "")}</div>
<form method="post" action="/edit">${hidden(edit)}
<textarea id="text" name="text">${escape(note ?? "")}</textarea>
<button id="save">Save</button>
</form>
<h2>Your sessions</h2>
<ul id="sessions">
${rows}
</ul>
<form method="post" action="/logout">${hidden(manage)}<button id="logout">Log out</button></form>
<form method="post" action="/logout-everywhere">${hidden(manage)}<button id="logout-everywhere">Log out everywhere</button></form>`,
      ),
    );
  });

  const refuse = (res) => res.status(403).send(page("Refused", "<p>The CSRF token is not valid.</p>"));

  app.post("/login", async (req, res) => {
    if (!(await req.session.verifyCsrf(req.body.csrf, "login"))) return refuse(res);
    const user = String(req.body.user ?? "");
    if (USERS.get(user) !== req.body.password) return res.redirect(303, "/?error=Wrong+user+or+password");
    await req.session.login(user, { remember: req.body.remember === "1" });
    res.redirect(303, "/");
  });

  app.post("/edit", async (req, res) => {
    if (!(await req.session.user())) return res.redirect(303, "/");
    if (!(await req.session.verifyCsrf(req.body.csrf, "edit"))) return refuse(res);
    await req.session.set("note", String(req.body.text ?? "").slice(0, 2000));
    res.redirect(303, "/");
  });

  app.post("/sessions/revoke", async (req, res) => {
    if (!(await req.session.verifyCsrf(req.body.csrf, "manage"))) return refuse(res);
    await req.session.revoke(String(req.body.ref ?? ""));
    res.redirect(303, "/");
  });

  app.post("/logout", async (req, res) => {
    if (!(await req.session.verifyCsrf(req.body.csrf, "manage"))) return refuse(res);
    await req.session.logout();
    res.redirect(303, "/");
  });

  app.post("/logout-everywhere", async (req, res) => {
    if (!(await req.session.verifyCsrf(req.body.csrf, "manage"))) return refuse(res);
    await req.session.logoutEverywhere();
    res.redirect(303, "/");
  });

  // Tessera's store down: 503, and the user stays logged in once it is back.
  app.use(tessera.unavailable());
  return app;
}
