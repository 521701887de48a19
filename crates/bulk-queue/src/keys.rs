//! Every Redis key name, built in one place.

use bulk_core::JobId;

/// Key names under one prefix. The prefix is wrapped in `{…}` as a Redis
/// Cluster hash tag so all keys of one deployment hash to one slot, which the
/// multi-key Lua scripts require.
#[derive(Clone, Debug)]
pub struct Keys {
    tag: String,
}

impl Keys {
    /// Keys under `prefix` (e.g. `fhir-bulk`).
    pub fn new(prefix: &str) -> Self {
        Keys { tag: format!("{{{prefix}}}") }
    }

    /// The list of queued job ids.
    pub fn queue(&self) -> String {
        format!("{}:queue", self.tag)
    }

    /// The sorted set of running jobs by lease deadline.
    pub fn leases(&self) -> String {
        format!("{}:leases", self.tag)
    }

    /// Every job id by creation time (ms), for operators' listings.
    pub fn jobs(&self) -> String {
        format!("{}:jobs", self.tag)
    }

    /// Failed job ids by failure time (ms): the dead letters.
    pub fn dead(&self) -> String {
        format!("{}:dead", self.tag)
    }

    /// Every pinned export file (CID) by the time (ms) it may be unpinned.
    pub fn content(&self) -> String {
        format!("{}:content", self.tag)
    }

    /// How many downloads of `cid` are in flight (a file is not unpinned mid-stream).
    pub fn reading(&self, cid: &str) -> String {
        format!("{}:reading:{cid}", self.tag)
    }

    /// The prefix of `reading` keys.
    pub fn reading_prefix(&self) -> String {
        format!("{}:reading:", self.tag)
    }

    /// The prefix of `file` keys.
    pub fn file_prefix(&self) -> String {
        format!("{}:file:", self.tag)
    }

    /// The job an (owner, `Idempotency-Key`) pair created. Hashed: the key is
    /// client input, so it must not shape key names or their length.
    pub fn idempotency(&self, owner: &str, key: &str) -> String {
        format!("{}:idem:{}", self.tag, idempotency_hash(owner, key))
    }

    /// A one-time value seen (e.g. a client assertion's `jti`), hashed like
    /// idempotency keys; lives until the value may no longer be presented.
    pub fn once(&self, key: &str) -> String {
        format!("{}:once:{}", self.tag, idempotency_hash("once", key))
    }

    /// One job's record.
    pub fn job(&self, id: &JobId) -> String {
        format!("{}:job:{id}", self.tag)
    }

    /// The set of jobs whose manifest lists the file `cid`.
    pub fn file(&self, cid: &str) -> String {
        format!("{}:file:{cid}", self.tag)
    }

    /// The prefix of record keys, for scripts that derive a record key from an id.
    pub fn job_prefix(&self) -> String {
        format!("{}:job:", self.tag)
    }
}

/// SHA-256 of owner and key, hex: the same pair always maps to the same name.
pub(crate) fn idempotency_hash(owner: &str, key: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(owner.as_bytes());
    h.update([0u8]);
    h.update(key.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_keys_share_one_cluster_hash_tag() {
        let k = Keys::new("t1");
        let id = JobId::new();
        for key in [k.queue(), k.leases(), k.job(&id), k.jobs(), k.dead(), k.file("Qm")] {
            assert!(key.starts_with("{t1}:"), "{key}");
        }
        assert!(k.job(&id).starts_with(&k.job_prefix()));
    }
}
