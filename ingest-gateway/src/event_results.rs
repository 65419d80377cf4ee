//! What became of each event of a request: the broker has it
//! ([`Acknowledged`]), or it was refused with every rule it broke
//! ([`Rejected`]). Both the answers and the errors list them.

use std::borrow::Cow;

use serde::Serialize;
use serde::ser::SerializeStruct;
use serde_json::{Value, json};
use sluice_schemas::FieldError;

/// An event the broker has.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Acknowledged<'a> {
    pub index: usize,
    pub event_id: Cow<'a, str>,
}

impl Acknowledged<'_> {
    pub fn into_owned(self) -> Acknowledged<'static> {
        Acknowledged {
            index: self.index,
            event_id: Cow::Owned(self.event_id.into_owned()),
        }
    }
}

/// An event refused, with every rule it broke.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub index: usize,
    pub errors: Vec<FieldError>,
}

impl Serialize for Rejected {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct("Rejected", 2)?;
        out.serialize_field("index", &self.index)?;
        out.serialize_field("errors", &field_errors_json(&self.errors))?;
        out.end()
    }
}

pub fn field_errors_json(errors: &[FieldError]) -> Value {
    errors
        .iter()
        .map(|e| json!({"field": e.field, "reason": e.reason}))
        .collect()
}
