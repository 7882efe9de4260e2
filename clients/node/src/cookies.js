// Following `Set-Cookie` values within one request, so that an operation after a login (or
// after an update that created a session) names the session the browser will have.

/** The `name=value` pairs of a `Cookie` header, in order (the last of a name wins). */
export function parseCookieHeader(header) {
  const out = new Map();
  for (const part of String(header ?? "").split(";")) {
    const eq = part.indexOf("=");
    const name = eq < 0 ? "" : part.slice(0, eq).trim();
    if (name) out.set(name, part.slice(eq + 1).trim());
  }
  return out;
}

/** The name and value of a `Set-Cookie` value, and whether it removes the cookie. */
export function setCookieNameValue(setCookie) {
  const [first, ...attributes] = String(setCookie).split(";");
  const eq = first.indexOf("=");
  const name = (eq < 0 ? first : first.slice(0, eq)).trim();
  const value = eq < 0 ? "" : first.slice(eq + 1).trim();
  const removal = value === "" || attributes.some((a) => a.trim().toLowerCase() === "max-age=0");
  return { name, value, removal };
}

/** The `Cookie` header the browser sends after it applies `setCookies`. */
export function applySetCookies(header, setCookies) {
  const jar = parseCookieHeader(header);
  for (const sc of setCookies) {
    const { name, value, removal } = setCookieNameValue(sc);
    if (removal) jar.delete(name);
    else jar.set(name, value);
  }
  return [...jar].map(([k, v]) => `${k}=${v}`).join("; ");
}

/** One `Set-Cookie` per name (RFC 6265bis §4.1.1): a later value replaces an earlier one. */
export function mergeSetCookies(earlier, later) {
  let out = [...earlier];
  for (const sc of later) {
    const { name } = setCookieNameValue(sc);
    out = out.filter((c) => setCookieNameValue(c).name !== name);
    out.push(sc);
  }
  return out;
}
