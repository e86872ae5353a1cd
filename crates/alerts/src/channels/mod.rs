//! One [`Notifier`](kamiyo_core_models::Notifier) per channel kind.

pub mod discord;
pub mod email;
pub mod opsgenie;
pub mod pagerduty;
pub mod slack;
pub mod telegram;
pub mod webhook;

pub use discord::Discord;
pub use email::{SendGrid, Smtp, SmtpSecurity, SmtpSettings};
pub use opsgenie::Opsgenie;
pub use pagerduty::PagerDuty;
pub use slack::Slack;
pub use telegram::Telegram;
pub use webhook::Webhook;
