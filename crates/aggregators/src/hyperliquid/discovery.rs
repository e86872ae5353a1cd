//! HLP discovery: the parent vault's `relationship.data.childAddresses`, and which children are
//! Liquidator vaults (by their names), read at start — never hard-coded.

use kamiyo_core_models::{Address, SourceError, Timestamp};

use super::rest::InfoClient;

/// The HLP vault family as discovered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HlpTopology {
    /// The parent vault.
    pub parent: Address,
    /// Every child, with its name when it could be read.
    pub children: Vec<(Address, String)>,
}

impl HlpTopology {
    /// Children whose name says they are a Liquidator (they take backstop liquidations).
    pub fn liquidators(&self) -> Vec<Address> {
        self.children
            .iter()
            .filter(|(_, n)| is_liquidator_name(n))
            .map(|(a, _)| *a)
            .collect()
    }

    /// Every child address.
    pub fn child_addresses(&self) -> Vec<Address> {
        self.children.iter().map(|(a, _)| *a).collect()
    }
}

/// True for vault names like "HLP Liquidator" or "HLP Liquidator 2".
pub fn is_liquidator_name(name: &str) -> bool {
    name.to_ascii_lowercase().contains("liquidator")
}

/// Reads the parent's children, then each child's name. A child whose details cannot be read
/// is kept with an empty name (it is still watched as an HLP child).
pub async fn discover_hlp(
    client: &InfoClient,
    parent: Address,
    now: Timestamp,
) -> Result<HlpTopology, SourceError> {
    let details = client
        .vault_details(parent, now)
        .await?
        .ok_or_else(|| SourceError::Decode {
            venue: "hyperliquid".into(),
            what: "vaultDetails".into(),
            detail: format!("{parent} is not a vault"),
        })?;
    let mut children = Vec::with_capacity(details.children.len());
    for child in details.children {
        let name = match client.vault_details(child, now).await {
            Ok(Some(d)) => d.snapshot.name,
            Ok(None) | Err(_) => String::new(),
        };
        children.push((child, name));
    }
    Ok(HlpTopology { parent, children })
}
