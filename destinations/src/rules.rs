//! Which events a webhook gets: its rules, checked when they are written and
//! matched against every event of the webhook's project.
//!
//! A webhook matches an event when any of its rules does; a rule matches
//! when every condition it names holds: `type` (exact, or a glob with `*`
//! and `?`), `source`, `status`, and each `properties` entry, read the way the
//! query API's `property.KEY=VALUE` filter reads it (same key syntax; a
//! string property's value, or the JSON text of any other value). `sample`
//! then keeps a fraction of the matches, decided by the event id, so that a
//! replay of the same event makes the same decision.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sluice_schemas::Event;
use sluice_schemas::rollup::hash::hash64;
use sluice_schemas::rollup::property::{PROPERTY_KEY_RULE, property_values, valid_property_key};

/// Most rules per webhook.
pub const MAX_RULES: usize = 32;
/// Most property conditions per rule.
pub const MAX_PROPERTIES: usize = 16;
/// Longest type pattern, source, status or property value.
pub const MAX_TEXT_BYTES: usize = 256;

/// One rule: every condition it names must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The event type: exact, or a glob where `*` is any run of characters
    /// and `?` one character (`checkout.*`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Property key to the value it must equal.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
    /// The fraction of matching events to deliver, in (0, 1]; all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<f64>,
}

/// A rule that cannot be used, with the field that says why
/// (`rules[2].properties.plan`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct RuleError {
    pub field: String,
    pub reason: String,
}

impl RuleError {
    fn new(field: String, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// Checks a webhook's rules, naming the first field that is wrong.
pub fn check_rules(rules: &[Rule]) -> Result<(), RuleError> {
    if rules.is_empty() {
        return Err(RuleError::new(
            "rules".into(),
            "must hold at least one rule (`{}` matches every event)",
        ));
    }
    if rules.len() > MAX_RULES {
        return Err(RuleError::new(
            "rules".into(),
            format!("holds more than {MAX_RULES} rules"),
        ));
    }
    for (index, rule) in rules.iter().enumerate() {
        rule.check(&format!("rules[{index}]"))?;
    }
    Ok(())
}

impl Rule {
    fn check(&self, at: &str) -> Result<(), RuleError> {
        for (name, value) in [
            ("type", &self.event_type),
            ("source", &self.source),
            ("status", &self.status),
        ] {
            if let Some(value) = value {
                check_text(value)
                    .map_err(|reason| RuleError::new(format!("{at}.{name}"), reason))?;
            }
        }
        if self.properties.len() > MAX_PROPERTIES {
            return Err(RuleError::new(
                format!("{at}.properties"),
                format!("holds more than {MAX_PROPERTIES} conditions"),
            ));
        }
        for (key, value) in &self.properties {
            let field = format!("{at}.properties.{key}");
            if !valid_property_key(key) {
                return Err(RuleError::new(field, PROPERTY_KEY_RULE));
            }
            if value.len() > MAX_TEXT_BYTES {
                return Err(RuleError::new(
                    field,
                    format!("is longer than {MAX_TEXT_BYTES} bytes"),
                ));
            }
        }
        if let Some(sample) = self.sample
            && !(sample > 0.0 && sample <= 1.0)
        {
            return Err(RuleError::new(
                format!("{at}.sample"),
                "must be a fraction greater than 0 and at most 1",
            ));
        }
        Ok(())
    }

    /// Whether `event` meets every condition (sampling aside).
    fn holds_for(&self, event: &Event, keys: &[String]) -> bool {
        let field_holds = |wanted: &Option<String>, actual: &Option<String>| {
            wanted
                .as_ref()
                .is_none_or(|wanted| actual.as_deref().unwrap_or("") == wanted)
        };
        let type_holds = self
            .event_type
            .as_ref()
            .is_none_or(|pattern| glob_matches(pattern, &event.event_type));
        if !(type_holds
            && field_holds(&self.source, &event.source)
            && field_holds(&self.status, &event.status))
        {
            return false;
        }
        if keys.is_empty() {
            return true;
        }
        property_values(&event.properties, keys)
            .iter()
            .zip(self.properties.values())
            .all(|(actual, wanted)| actual == wanted)
    }
}

fn check_text(value: &str) -> Result<(), String> {
    if value.is_empty() {
        Err("must not be empty (leave it out to match any value)".into())
    } else if value.len() > MAX_TEXT_BYTES {
        Err(format!("is longer than {MAX_TEXT_BYTES} bytes"))
    } else if value.chars().any(char::is_control) {
        Err("must not contain control characters".into())
    } else {
        Ok(())
    }
}

/// A webhook's rules, ready to match: the property keys of each rule are
/// listed once, not per event.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    rules: Vec<(Rule, Vec<String>)>,
}

impl Matcher {
    pub fn new(rules: &[Rule]) -> Self {
        Self {
            rules: rules
                .iter()
                .map(|rule| (rule.clone(), rule.properties.keys().cloned().collect()))
                .collect(),
        }
    }

    /// Whether the webhook `webhook_id` gets `event`: some rule holds and
    /// its sample keeps the event.
    pub fn matches(&self, webhook_id: &str, event: &Event) -> bool {
        self.rules.iter().any(|(rule, keys)| {
            rule.holds_for(event, keys)
                && rule
                    .sample
                    .is_none_or(|fraction| sampled(webhook_id, &event.event_id, fraction))
        })
    }
}

/// Whether the deterministic sample of `fraction` keeps `event_id` for
/// `webhook_id`: the same answer in every process and on every replay, and
/// independent between webhooks.
pub fn sampled(webhook_id: &str, event_id: &str, fraction: f64) -> bool {
    if fraction >= 1.0 {
        return true;
    }
    let mut input = Vec::with_capacity(webhook_id.len() + event_id.len() + 1);
    input.extend_from_slice(webhook_id.as_bytes());
    input.push(0);
    input.extend_from_slice(event_id.as_bytes());
    // The top 53 bits as a fraction in [0, 1).
    let point = (hash64(0x5A3F_1E0D, &input) >> 11) as f64 / (1u64 << 53) as f64;
    point < fraction
}

/// Whether `text` matches the glob `pattern`: `*` any run of characters
/// (also none), `?` exactly one, everything else itself.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it currently covers up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str, properties: &str) -> Event {
        let mut event = Event::minimal("e-1", "shop", event_type, 1, 2);
        event.source = Some("web".into());
        event.status = Some("ok".into());
        event.properties = properties.into();
        event
    }

    fn rule(json: &str) -> Rule {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn globs() {
        for (pattern, text) in [
            ("checkout.*", "checkout.done"),
            ("checkout.*", "checkout."),
            ("*", ""),
            ("a?c", "abc"),
            ("*.done", "x.y.done"),
            ("a*b*c", "aXbYbZc"),
            ("ünï*", "ünïcode"),
            ("exact", "exact"),
        ] {
            assert!(glob_matches(pattern, text), "{pattern} {text}");
        }
        for (pattern, text) in [
            ("checkout.*", "checkout"),
            ("a?c", "ac"),
            ("exact", "exactly"),
            ("*.done", "x.don"),
            ("a*b*c", "aXbYbZ"),
        ] {
            assert!(!glob_matches(pattern, text), "{pattern} {text}");
        }
    }

    #[test]
    fn every_condition_of_a_rule_must_hold_and_any_rule_will_do() {
        let properties = r#"{"plan":"pro","seats":3,"trial":false,"nested":{"plan":"x"}}"#;
        let matcher = Matcher::new(&[
            rule(r#"{"type":"checkout.*","source":"web","properties":{"plan":"pro","seats":"3"}}"#),
            rule(r#"{"type":"refund","status":"failed"}"#),
        ]);
        assert!(matcher.matches("wh", &event("checkout.done", properties)));
        // The wrong value, a missing property, another source: no match.
        assert!(!matcher.matches(
            "wh",
            &event("checkout.done", r#"{"plan":"free","seats":3}"#)
        ));
        assert!(!matcher.matches("wh", &event("checkout.done", r#"{"seats":3}"#)));
        let mut other_source = event("checkout.done", properties);
        other_source.source = Some("ios".into());
        assert!(!matcher.matches("wh", &other_source));
        // The second rule: status must be exactly `failed`.
        assert!(!matcher.matches("wh", &event("refund", properties)));
        let mut failed = event("refund", "{}");
        failed.status = Some("failed".into());
        assert!(matcher.matches("wh", &failed));
        // A rule naming a field the event lacks does not match it.
        let mut no_source = event("checkout.done", properties);
        no_source.source = None;
        assert!(!matcher.matches("wh", &no_source));
        // `{}` matches everything.
        assert!(Matcher::new(&[Rule::default()]).matches("wh", &event("any", "{}")));
        // Booleans compare by their JSON text, as the query API's filter does.
        let trial = Matcher::new(&[rule(r#"{"properties":{"trial":"false"}}"#)]);
        assert!(trial.matches("wh", &event("x", properties)));
    }

    #[test]
    fn sampling_is_deterministic_and_close_to_the_fraction() {
        let kept = (0..10_000)
            .filter(|i| sampled("wh_1", &format!("event-{i}"), 0.25))
            .count();
        assert!((2_200..2_800).contains(&kept), "{kept}");
        for i in 0..100 {
            let id = format!("event-{i}");
            assert_eq!(sampled("wh_1", &id, 0.5), sampled("wh_1", &id, 0.5));
        }
        assert!((0..100).all(|i| sampled("wh", &i.to_string(), 1.0)));
        let sampled_rule = Matcher::new(&[rule(r#"{"sample":0.5}"#)]);
        let decisions: Vec<bool> = (0..50)
            .map(|i| {
                let mut e = event("x", "{}");
                e.event_id = format!("id-{i}");
                sampled_rule.matches("wh", &e)
            })
            .collect();
        assert!(decisions.contains(&true) && decisions.contains(&false));
    }

    #[test]
    fn bad_rules_name_their_field() {
        let cases = [
            ("[]", "rules"),
            (r#"[{}, {"type":""}]"#, "rules[1].type"),
            (r#"[{"properties":{"a b":"1"}}]"#, "rules[0].properties.a b"),
            (r#"[{"sample":0}]"#, "rules[0].sample"),
            (r#"[{"sample":1.5}]"#, "rules[0].sample"),
            (r#"[{"status":"a\u0001"}]"#, "rules[0].status"),
        ];
        for (json, field) in cases {
            let rules: Vec<Rule> = serde_json::from_str(json).unwrap();
            assert_eq!(check_rules(&rules).unwrap_err().field, field, "{json}");
        }
        let many: Vec<Rule> = vec![Rule::default(); MAX_RULES + 1];
        assert_eq!(check_rules(&many).unwrap_err().field, "rules");
        assert!(check_rules(&[rule(r#"{"type":"a.*","sample":0.1}"#)]).is_ok());
        assert!(serde_json::from_str::<Rule>(r#"{"typo":"x"}"#).is_err());
    }
}
