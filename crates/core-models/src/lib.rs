//! Domain vocabulary and boundary traits of kamiyo (no I/O).
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod alert;
pub mod error;
pub mod exploit;
pub mod feed;
pub mod ids;
pub mod ledger;
pub mod market;
pub mod operator;
pub mod price;
pub mod security;
pub mod store;
pub mod time;
pub mod units;

#[cfg(any(test, feature = "test-utils"))]
pub mod testing;

pub use alert::{Alert, DeliveryReceipt, Notifier, NotifyError, RelatedIncident};
pub use error::{ModelError, ModelResult};
pub use exploit::{Exploit, ExploitCategory, ExploitPage, ExploitQuery};
pub use feed::{FeedState, FeedStatus, FreshnessTracker};
pub use ids::{Address, Coin, Fnv64, IncidentKey, ProtocolId, StableId};
pub use market::{
    AssetCtx, BookLevel, BookSnapshot, Candle, EventStream, Fill, FillDir, LedgerEvent, LedgerKind,
    LiquidationInfo, LiquidationMethod, MarketDataStream, MarketEvent, Mids, OiCapSnapshot,
    Position, PositionSnapshot, SeriesPoint, Side, Trade, VaultSnapshot,
};
pub use operator::{
    ActionKind, IncidentAction, KeyScope, OperatorStore, Silence, SilenceMatchers, acknowledgement,
    acknowledgements, operator_resolution,
};
pub use price::{
    Price, PriceSource, ReferenceQuote, SourceError, Venue, cmp_decimal, deviation_pct,
    deviation_pct_4dp,
};
pub use rust_decimal::Decimal;
pub use security::{
    CustomThreat, Detection, Direction, Evidence, EvidenceValue, Incident, IncidentChange,
    IncidentStatus, IncidentUpdate, MEMBER_OF, SecurityEvent, Severity, ThreatType,
};
pub use store::{
    ApiKeyRecord, ApiKeyStore, AuditEntry, AuditStore, DeliveryQuery, DeviationKind,
    DeviationSample, EventQuery, ExploitStore, IncidentQuery, IncidentStore, IngestBatch,
    LiquidationRecord, MarketBar, MarketStore, Order, OutboxEntry, OutboxStatus, OutboxStore,
    PositionRecord, StoreError, StoreResult, StoredEvent, VaultPoint,
};
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
