//! Alert routing and delivery for kamiyo: Discord, Slack, Telegram, email, signed webhooks, with a durable outbox.
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
