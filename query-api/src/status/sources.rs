//! What the status endpoints read besides ClickHouse, held in the app state.

use super::broker::BrokerView;
use super::peers::Peers;

#[derive(Clone)]
pub struct StatusSources {
    pub broker: BrokerView,
    /// The processor's consumer group, whose progress is reported.
    pub processor_group: String,
    pub peers: Peers,
}
