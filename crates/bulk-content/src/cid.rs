//! A parsed content identifier, so that no unchecked string reaches a backend
//! or a file path.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ContentError;

/// A CIDv0 (`Qm…`, base58btc sha2-256 multihash) or a base32 CIDv1 (`b…`).
///
/// Only the alphabets of those encodings are accepted, which also makes a CID
/// safe to use as a file name in the local store.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cid(String);

const BASE58: &str = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const BASE32_LOWER: &str = "abcdefghijklmnopqrstuvwxyz234567";

impl Cid {
    /// The CID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps text this crate computed itself as a CID.
    pub(crate) fn from_trusted(text: String) -> Self {
        debug_assert!(text.parse::<Cid>().is_ok(), "{text}");
        Cid(text)
    }

    /// `ipfs://{cid}`, the URL form used in manifests.
    pub fn ipfs_url(&self) -> String {
        format!("ipfs://{}", self.0)
    }
}

impl FromStr for Cid {
    type Err = ContentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let v0 = s.len() == 46 && s.starts_with("Qm") && s.chars().all(|c| BASE58.contains(c));
        let v1 =
            (10..=128).contains(&s.len()) && s.starts_with('b') && s[1..].chars().all(|c| BASE32_LOWER.contains(c));
        if v0 || v1 {
            Ok(Cid(s.to_owned()))
        } else {
            Err(ContentError::InvalidCid)
        }
    }
}

impl TryFrom<String> for Cid {
    type Error = ContentError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Cid> for String {
    fn from(c: Cid) -> String {
        c.0
    }
}

impl fmt::Display for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kubo_v0_cid_parses() {
        let c: Cid = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o".parse().expect("valid");
        assert_eq!(c.ipfs_url(), "ipfs://QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o");
    }

    #[test]
    fn path_traversal_and_garbage_are_not_cids() {
        for bad in ["", "../etc/passwd", "Qm0OIl", "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5/", "bAFY"] {
            assert!(bad.parse::<Cid>().is_err(), "{bad} accepted");
        }
    }
}
