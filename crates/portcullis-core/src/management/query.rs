//! Auth0's user search syntax (`q` with `search_engine=v3`), the part of it Portcullis
//! supports: terms `field:value` joined by `AND` (or by spaces), where a quoted value matches
//! exactly and a value ending in `*` matches a prefix; a bare term searches email and name.
//! Fields: `email`, `name`, `nickname`, `user_id`, `email_verified`, `blocked`, and
//! `app_metadata.<path>` / `user_metadata.<path>`.

/// One condition of a search.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Term {
    /// A column compared exactly or by prefix.
    Field { field: Field, value: Match },
    /// A metadata document (`app_metadata` or `user_metadata`) at a dotted path.
    Metadata {
        column: MetadataColumn,
        path: Vec<String>,
        value: Match,
    },
    /// A bare word: email or name starting with it.
    Any(Match),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Email,
    Name,
    Nickname,
    UserId,
    EmailVerified,
    Blocked,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadataColumn {
    App,
    User,
}

impl MetadataColumn {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::App => "app_metadata",
            Self::User => "user_metadata",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match {
    Exact(String),
    Prefix(String),
    /// `field:*`: the field is present.
    Present,
}

/// Why a query could not be read; the message is shown to the caller.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct QueryError(pub String);

const MAX_TERMS: usize = 10;

/// Parses `q`. An empty query matches everyone.
pub fn parse(q: &str) -> Result<Vec<Term>, QueryError> {
    let mut terms = Vec::new();
    for token in tokenize(q)? {
        if token == "AND" {
            continue;
        }
        if token == "OR" || token == "NOT" || token.starts_with('-') || token.starts_with('(') {
            return Err(QueryError(format!(
                "unsupported query operator near {token:?}: combine terms with AND"
            )));
        }
        terms.push(term(&token)?);
        if terms.len() > MAX_TERMS {
            return Err(QueryError(format!(
                "a query may have at most {MAX_TERMS} terms"
            )));
        }
    }
    Ok(terms)
}

fn tokenize(q: &str) -> Result<Vec<String>, QueryError> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut chars = q.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if in_quotes => match chars.next() {
                Some(escaped) => {
                    current.push('\\');
                    current.push(escaped);
                }
                None => return Err(QueryError("the query ends with a lone backslash".into())),
            },
            '"' => {
                in_quotes = !in_quotes;
                current.push(c);
            }
            c if c.is_whitespace() && !in_quotes => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if in_quotes {
        return Err(QueryError("the query has an unterminated quote".into()));
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    Ok(tokens)
}

fn value(raw: &str) -> Result<Match, QueryError> {
    if let Some(inner) = raw.strip_prefix('"') {
        let inner = inner
            .strip_suffix('"')
            .ok_or_else(|| QueryError(format!("badly quoted value {raw}")))?;
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else {
                out.push(c);
            }
        }
        return Ok(Match::Exact(out));
    }
    if raw == "*" {
        return Ok(Match::Present);
    }
    if let Some(prefix) = raw.strip_suffix('*') {
        if prefix.contains('*') || prefix.contains('?') {
            return Err(QueryError(format!(
                "only a trailing * is supported in {raw:?}"
            )));
        }
        return Ok(Match::Prefix(prefix.to_owned()));
    }
    if raw.contains('*') || raw.contains('?') {
        return Err(QueryError(format!(
            "only a trailing * is supported in {raw:?}"
        )));
    }
    Ok(Match::Exact(raw.to_owned()))
}

fn term(token: &str) -> Result<Term, QueryError> {
    let Some((name, raw)) = token.split_once(':') else {
        return Ok(Term::Any(value(token)?));
    };
    if raw.is_empty() {
        return Err(QueryError(format!("{name}: needs a value")));
    }
    let v = value(raw)?;
    let field = match name {
        "email" => Field::Email,
        "name" => Field::Name,
        "nickname" => Field::Nickname,
        "user_id" => Field::UserId,
        "email_verified" => Field::EmailVerified,
        "blocked" => Field::Blocked,
        other => {
            let (column, path) = if let Some(p) = other.strip_prefix("app_metadata.") {
                (MetadataColumn::App, p)
            } else if let Some(p) = other.strip_prefix("user_metadata.") {
                (MetadataColumn::User, p)
            } else {
                return Err(QueryError(format!(
                    "searching by {other:?} is not supported"
                )));
            };
            let path: Vec<String> = path.split('.').map(str::to_owned).collect();
            if path.iter().any(|p| {
                p.is_empty()
                    || !p
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            }) {
                return Err(QueryError(format!("invalid metadata path in {other:?}")));
            }
            return Ok(Term::Metadata {
                column,
                path,
                value: v,
            });
        }
    };
    if matches!(field, Field::EmailVerified | Field::Blocked)
        && !matches!(&v, Match::Exact(b) if b == "true" || b == "false")
    {
        return Err(QueryError(format!("{name} must be true or false")));
    }
    Ok(Term::Field { field, value: v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_prefix_metadata_and_bare_terms_parse() {
        let terms =
            parse(r#"email:"jane@example.com" AND name:jo* app_metadata.plan:"gold plan" smith"#)
                .unwrap();
        assert_eq!(
            terms[0],
            Term::Field {
                field: Field::Email,
                value: Match::Exact("jane@example.com".into())
            }
        );
        assert_eq!(
            terms[1],
            Term::Field {
                field: Field::Name,
                value: Match::Prefix("jo".into())
            }
        );
        assert_eq!(
            terms[2],
            Term::Metadata {
                column: MetadataColumn::App,
                path: vec!["plan".into()],
                value: Match::Exact("gold plan".into())
            }
        );
        assert_eq!(terms[3], Term::Any(Match::Exact("smith".into())));
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(
            parse("user_metadata.a.b:*").unwrap()[0],
            Term::Metadata {
                column: MetadataColumn::User,
                path: vec!["a".into(), "b".into()],
                value: Match::Present
            }
        );
    }

    #[test]
    fn unsupported_syntax_is_a_clear_error() {
        assert!(parse("email:a OR email:b").is_err());
        assert!(parse("password:x").is_err());
        assert!(parse(r#"name:"open"#).is_err());
        assert!(parse("name:*a*").is_err());
        assert!(parse("app_metadata.x'y:1").is_err());
        assert!(parse("blocked:maybe").is_err());
    }
}

/// Columns the user list can be sorted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortField {
    Email,
    Name,
    CreatedAt,
    UpdatedAt,
    LastLogin,
    LoginsCount,
    UserId,
}

/// A page of a user search, as the store runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserSearch {
    pub terms: Vec<Term>,
    /// The field and whether it is descending.
    pub sort: (SortField, bool),
    pub offset: i64,
    pub limit: i64,
}

/// Parses Auth0's `sort` parameter (`field:1` ascending, `field:-1` descending).
pub fn parse_sort(sort: Option<&str>) -> Result<(SortField, bool), QueryError> {
    let Some(sort) = sort.filter(|s| !s.is_empty()) else {
        return Ok((SortField::CreatedAt, false));
    };
    let (name, dir) = sort
        .split_once(':')
        .ok_or_else(|| QueryError(format!("sort must be field:1 or field:-1, not {sort:?}")))?;
    let field = match name {
        "email" => SortField::Email,
        "name" => SortField::Name,
        "created_at" => SortField::CreatedAt,
        "updated_at" => SortField::UpdatedAt,
        "last_login" => SortField::LastLogin,
        "logins_count" => SortField::LoginsCount,
        "user_id" => SortField::UserId,
        other => return Err(QueryError(format!("cannot sort by {other:?}"))),
    };
    match dir {
        "1" => Ok((field, false)),
        "-1" => Ok((field, true)),
        _ => Err(QueryError(format!(
            "sort must be field:1 or field:-1, not {sort:?}"
        ))),
    }
}
