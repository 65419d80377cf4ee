//! Query strings as name/value pairs: each endpoint takes the names it knows,
//! and any name left over is an error rather than silently ignored.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::{ApiError, Result};

/// The pairs of a query string, in order.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str::<Vec<(String, String)>>(query)
            .map(Params)
            .map_err(|error| ApiError::invalid("query", error.to_string()))
    }
}

impl Params {
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self(
            pairs
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
        )
    }

    /// The value of `name`, which may appear at most once.
    pub fn take(&mut self, name: &str) -> Result<Option<String>> {
        let mut values = self.take_where(|candidate| candidate == name);
        match values.len() {
            0 => Ok(None),
            1 => Ok(values.pop().map(|(_, value)| value)),
            _ => Err(ApiError::invalid(name, "given more than once")),
        }
    }

    /// Every pair whose name starts with `prefix`, as (rest of the name, value).
    pub fn take_prefixed(&mut self, prefix: &str) -> Vec<(String, String)> {
        self.take_where(|name| name.starts_with(prefix))
            .into_iter()
            .map(|(name, value)| (name[prefix.len()..].to_owned(), value))
            .collect()
    }

    /// Parses the value of `name` with `parse`, whose error is the reason.
    pub fn parse<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>> {
        self.take(name)?
            .map(|text| parse(&text).map_err(|reason| ApiError::invalid(name, reason)))
            .transpose()
    }

    /// Fails on the first parameter nobody took.
    pub fn finish(self) -> Result<()> {
        match self.0.into_iter().next() {
            None => Ok(()),
            Some((name, _)) => Err(ApiError::invalid(name, "unknown parameter")),
        }
    }

    fn take_where(&mut self, matches: impl Fn(&str) -> bool) -> Vec<(String, String)> {
        let (taken, kept) = std::mem::take(&mut self.0)
            .into_iter()
            .partition(|(name, _)| matches(name));
        self.0 = kept;
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_known_names_and_rejects_the_rest() {
        let mut params = Params::from_pairs(&[
            ("type", "a"),
            ("property.plan", "pro"),
            ("property.tier", "1"),
            ("extra", "x"),
        ]);
        assert_eq!(params.take("type").unwrap().as_deref(), Some("a"));
        assert_eq!(params.take("source").unwrap(), None);
        assert_eq!(params.take_prefixed("property.").len(), 2);
        let error = params.finish().unwrap_err();
        assert!(error.to_string().contains("extra"), "{error}");
        let mut twice = Params::from_pairs(&[("to", "1"), ("to", "2")]);
        assert!(twice.take("to").is_err());
    }
}
