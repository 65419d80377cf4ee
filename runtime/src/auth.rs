//! API keys as the foundation knows them: a static list from the settings,
//! mapping each key to its project.

use std::fmt;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

/// `key=project` pairs; a request presents the key as `Authorization: Bearer KEY`.
#[derive(Clone, Default)]
pub struct ApiKeys(Vec<(String, String)>);

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeys({} keys)", self.0.len())
    }
}

impl ApiKeys {
    /// Parses `key=project,key2=project2`; blank entries are skipped.
    pub fn parse(list: &[String]) -> anyhow::Result<Self> {
        let mut keys = Vec::new();
        for entry in list.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            let Some((key, project)) = entry.split_once('=') else {
                anyhow::bail!("API key entry must be key=project, got one without `=`");
            };
            let (key, project) = (key.trim(), project.trim());
            if key.len() < 8 || project.is_empty() {
                anyhow::bail!("API keys need at least 8 characters and a project");
            }
            keys.push((key.to_owned(), project.to_owned()));
        }
        Ok(Self(keys))
    }

    /// The project of the bearer key in `headers`, if the key is known.
    pub fn project_for(&self, headers: &HeaderMap) -> Option<&str> {
        let presented = headers
            .get(AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")?
            .trim();
        // Compare against every key without stopping early, so the time taken
        // does not reveal how much of a guess was right.
        let mut found = None;
        for (key, project) in &self.0 {
            if constant_time_eq(key.as_bytes(), presented.as_bytes()) {
                found = Some(project.as_str());
            }
        }
        found
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn maps_bearer_keys_to_projects() {
        let keys =
            ApiKeys::parse(&["dev-key-123=demo".into(), " other-key-9 = p2 ".into()]).unwrap();
        assert_eq!(
            keys.project_for(&headers("Bearer dev-key-123")),
            Some("demo")
        );
        assert_eq!(keys.project_for(&headers("Bearer other-key-9")), Some("p2"));
        assert_eq!(keys.project_for(&headers("Bearer dev-key-12")), None);
        assert_eq!(keys.project_for(&headers("Basic dev-key-123")), None);
        assert_eq!(keys.project_for(&HeaderMap::new()), None);
    }

    #[test]
    fn refuses_malformed_lists() {
        assert!(ApiKeys::parse(&["nokey".into()]).is_err());
        assert!(ApiKeys::parse(&["short=p".into()]).is_err());
        assert!(
            ApiKeys::parse(&[String::new()])
                .unwrap()
                .project_for(&HeaderMap::new())
                .is_none()
        );
    }
}
