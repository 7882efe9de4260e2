//! Redacting store URLs for logs and error messages.

/// `url` with its password replaced by `***`, in the user info (`redis://user:***@host`,
/// `postgres://:***@host`) and in a `password=` query parameter
/// (`postgres://host/db?password=***`). A user name alone is kept; anything without `://` is
/// hidden whole. Every store crate shows its URLs through this one function.
///
/// # Examples
///
/// ```
/// use tessera_core::redact_url;
///
/// assert_eq!(redact_url("redis://:s3cret@cache:6379/1"), "redis://:***@cache:6379/1");
/// assert_eq!(
///     redact_url("postgres://db/sessions?user=app&password=s3cret"),
///     "postgres://db/sessions?user=app&password=***"
/// );
/// ```
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{hosts}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => p.to_owned(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_in_the_user_info_are_hidden() {
        for (url, want) in [
            ("redis://:s3cret@h:1/0", "redis://:***@h:1/0"),
            ("redis://user:s3cret@h:1", "redis://user:***@h:1"),
            ("postgres://u:pw@h:5432/db", "postgres://u:***@h:5432/db"),
            ("postgres://:pw@h", "postgres://:***@h"),
            (
                "redis+cluster://u:p%40ss@a:1,b:2",
                "redis+cluster://u:***@a:1,b:2",
            ),
            // The last `@` ends the user info: a password may hold one.
            ("redis://u:a@b@h:1", "redis://u:***@h:1"),
        ] {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn password_query_parameters_are_hidden() {
        for (url, want) in [
            (
                "postgres://h/db?user=u&password=pw&sslmode=disable",
                "postgres://h/db?user=u&password=***&sslmode=disable",
            ),
            (
                "redis://h:1/0?password=s3cret",
                "redis://h:1/0?password=***",
            ),
            (
                "postgres://h/db?PASSWORD=pw",
                "postgres://h/db?PASSWORD=***",
            ),
            (
                "postgres://u:pw@h/db?password=pw",
                "postgres://u:***@h/db?password=***",
            ),
        ] {
            assert_eq!(redact_url(url), want, "{url}");
            assert!(!redact_url(url).contains("pw@") && !redact_url(url).contains("=pw"));
        }
    }

    #[test]
    fn what_holds_no_password_is_kept_and_garbage_is_hidden() {
        for (url, want) in [
            ("redis://user@h:1", "redis://user@h:1"),
            ("redis://h:1", "redis://h:1"),
            ("postgresql://u@h/db", "postgresql://u@h/db"),
            ("postgres://h/db?user=u", "postgres://h/db?user=u"),
            ("garbage", "***"),
            ("nonsense:pw@h", "***"),
        ] {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }
}
