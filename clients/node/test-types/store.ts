// An Express app written against the store's declarations (type-checked, never run).

import express from "express";
import session from "express-session";
import { TesseraStore } from "tessera-sessions/store";

declare module "express-session" {
  interface SessionData {
    views: number;
  }
}

const store = new TesseraStore({ url: "http://127.0.0.1:7300", apiKey: "k", namespace: "app", ttl: 3600 });
const app = express();
app.use(session({ store, secret: "s", resave: false, saveUninitialized: false, cookie: { maxAge: 60_000 } }));
app.get("/", (req, res) => {
  req.session.views = (req.session.views ?? 0) + 1;
  res.json({ views: req.session.views });
});
store.length((err, n) => console.log(err, n ?? 0));
store.get("sid", (err, sess) => console.log(err, sess?.views));
const seconds: number = store.ttlOf({ cookie: { originalMaxAge: 1000 } } as session.SessionData);
console.log(seconds);
