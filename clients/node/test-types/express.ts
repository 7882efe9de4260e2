// An Express app written against the middleware's declarations (type-checked, never run).

import express from "express";
import { isUnavailable, tessera } from "tessera-sessions/express";

const app = express();
app.use(tessera({ url: "http://127.0.0.1:7300", apiKey: "k", timeout: 2000 }));

app.post("/login", async (req, res) => {
  const s = await req.session.login(String(req.body.user), { remember: true });
  res.json({ ref: s.ref, user: s.user?.id ?? null });
});

app.post("/edit", async (req, res) => {
  if (!(await req.session.verifyCsrf(req.body.csrf, "edit"))) {
    res.status(403).end();
    return;
  }
  await req.session.set("draft", String(req.body.text));
  await req.session.set({ a: 1, b: [true, null] });
  await req.session.remove("old", ["older"]);
  const token: string | null = await req.session.csrfToken("edit");
  const draft = await req.session.get("draft");
  const listed = await req.session.sessions();
  res.json({ token, draft, current: listed.find((x) => x.current)?.ref });
});

app.get("/", async (req, res, next) => {
  try {
    res.json({ user: (await req.session.user())?.id ?? null });
  } catch (e) {
    if (isUnavailable(e)) res.status(503).end();
    else next(e);
  }
});

app.post("/logout", async (req, res) => {
  const done = await req.session.logoutEverywhere();
  res.json({ revoked: done?.revoked ?? 0, cookies: req.session.setCookie.length });
});

app.use(tessera.unavailable({ retryAfter: 2 }));
