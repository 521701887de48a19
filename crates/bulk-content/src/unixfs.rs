//! Kubo's CID of a byte stream, computed without Kubo and without holding the
//! file: the UnixFS importer `ipfs add` runs with its defaults (CIDv0, dag-pb
//! leaves, 256 KiB fixed-size chunks, balanced DAG, at most 174 links a node).
//!
//! Only the root CID is computed; the blocks themselves are hashed and dropped.
//! Memory is one partial chunk plus, per tree level, at most 174 pending links.

use sha2::{Digest, Sha256};

use crate::Cid;

/// Kubo's default chunk size (`size-262144`).
const CHUNK_SIZE: usize = 262_144;

/// Kubo's default fan-out of the balanced layout (`helpers.DefaultLinksPerBlock`).
const MAX_LINKS: usize = 174;

/// UnixFS `Data.DataType.File`.
const UNIXFS_FILE: u64 = 2;

/// Multihash prefix of a sha2-256 digest: code 0x12, length 32.
const SHA2_256_PREFIX: [u8; 2] = [0x12, 0x20];

const BASE58_ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// A finished dag-pb block, as its parent's link sees it.
#[derive(Clone, Copy)]
struct Link {
    /// sha2-256 digest of the block; the link's `Hash` is the multihash of it.
    digest: [u8; 32],
    /// `Tsize`: the block's bytes plus the `Tsize` of all its links, i.e. the
    /// encoded size of the whole sub-DAG (go-merkledag's `ProtoNode.Size()`).
    tsize: u64,
    /// File bytes under the block; the parent lists it in `blocksizes`.
    file_size: u64,
}

/// Computes Kubo's CID of a byte stream incrementally.
///
/// Feed the bytes with [`update`](Self::update) in pieces of any size and call
/// [`finish`](Self::finish); the result is the CID `ipfs add` prints for the
/// same bytes with default settings. Memory stays bounded whatever the input
/// size: one partial 256 KiB chunk and at most 174 links per tree level.
pub struct CidBuilder {
    /// The chunk being filled; a full chunk becomes a leaf at once, because a
    /// fixed-size chunker never changes a full chunk whatever follows.
    chunk: Vec<u8>,
    /// `levels[0]` holds links to leaves not yet under a parent, `levels[k]`
    /// links to depth-`k` nodes. A level is only closed into a parent when a
    /// 175th link arrives (or at `finish`), because until then it is unknown
    /// whether the node is the root.
    levels: Vec<Vec<Link>>,
    /// Bytes fed so far.
    len: u64,
    /// `CHUNK_SIZE`, except in tests that shrink the tree to check its shape.
    chunk_size: usize,
    /// `MAX_LINKS`, except in tests that shrink the tree to check its shape.
    max_links: usize,
}

impl Default for CidBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl CidBuilder {
    /// A builder for an empty stream.
    pub fn new() -> Self {
        CidBuilder {
            chunk: Vec::with_capacity(CHUNK_SIZE),
            levels: Vec::new(),
            len: 0,
            chunk_size: CHUNK_SIZE,
            max_links: MAX_LINKS,
        }
    }

    /// A builder with a smaller chunk size and fan-out, so that deep trees
    /// can be checked with a few bytes.
    #[cfg(test)]
    fn with_shape(chunk_size: usize, max_links: usize) -> Self {
        CidBuilder { chunk_size, max_links, ..Self::new() }
    }

    /// Feeds the next bytes of the stream.
    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        while !data.is_empty() {
            let take = (self.chunk_size - self.chunk.len()).min(data.len());
            self.chunk.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.chunk.len() == self.chunk_size {
                self.flush_chunk();
            }
        }
    }

    /// Number of bytes fed so far.
    pub fn bytes_len(&self) -> u64 {
        self.len
    }

    /// The CID of everything fed, as Kubo computes it.
    pub fn finish(mut self) -> Cid {
        if !self.chunk.is_empty() {
            self.flush_chunk();
        }
        let root = match self.levels.len() {
            // Kubo's balanced layout special-cases a stream with no chunk: a
            // leaf made from `nil` data, so UnixFS `Data` is absent (not an
            // empty bytes value) and the block is `0a 04 08 02 18 00`.
            0 => leaf(None),
            // A single chunk is its own root, with no parent node.
            1 if self.levels[0].len() == 1 => self.levels[0][0],
            _ => {
                // Close every level bottom-up into a link one level up. That
                // link goes through `push_link` too: if the level above is
                // full, it first closes into a deeper root, exactly as when
                // more chunks follow. Levels below the top are never empty (a
                // level is closed only to make room for a link that then lands
                // in it), and the top one ends with at least two links.
                let mut depth = 0;
                while depth + 1 < self.levels.len() {
                    let links = std::mem::take(&mut self.levels[depth]);
                    self.push_link(depth + 1, internal_node(&links));
                    depth += 1;
                }
                internal_node(&self.levels[depth])
            }
        };
        cid_v0(&root.digest)
    }

    /// Turns the current chunk into a leaf and files it at level 0.
    fn flush_chunk(&mut self) {
        let leaf = leaf(Some(&self.chunk));
        self.chunk.clear();
        self.push_link(0, leaf);
    }

    /// Adds a link at `depth`, first closing that level into a parent one
    /// level up if it is already full. This reproduces go-unixfs's balanced
    /// builder: a full tree becomes the first child of a deeper root, and the
    /// following children are filled to the same depth.
    fn push_link(&mut self, depth: usize, link: Link) {
        if self.levels.len() == depth {
            self.levels.push(Vec::with_capacity(self.max_links));
        }
        if self.levels[depth].len() == self.max_links {
            let parent = internal_node(&self.levels[depth]);
            self.levels[depth].clear();
            self.push_link(depth + 1, parent);
        }
        self.levels[depth].push(link);
    }
}

/// A dag-pb leaf: `PBNode { Data: UnixFS { Type: File, Data: chunk, filesize } }`.
///
/// The chunk is hashed in place rather than copied into a block buffer; only
/// the few header and trailer bytes around it are built.
fn leaf(chunk: Option<&[u8]>) -> Link {
    let n = chunk.map_or(0, <[u8]>::len) as u64;
    // UnixFS Data, in field order: Type (1), Data (2, only when present), filesize (3).
    let mut head = Vec::with_capacity(16);
    put_key(&mut head, 1, WIRE_VARINT);
    put_varint(&mut head, UNIXFS_FILE);
    if chunk.is_some() {
        put_key(&mut head, 2, WIRE_LEN);
        put_varint(&mut head, n);
    }
    let mut tail = Vec::with_capacity(11);
    put_key(&mut tail, 3, WIRE_VARINT);
    put_varint(&mut tail, n);
    let unixfs_len = head.len() as u64 + n + tail.len() as u64;

    // PBNode has no Links, so the block is just field 1 (Data) around UnixFS.
    let mut block_head = Vec::with_capacity(24);
    put_key(&mut block_head, 1, WIRE_LEN);
    put_varint(&mut block_head, unixfs_len);
    block_head.extend_from_slice(&head);

    let mut hasher = Sha256::new();
    hasher.update(&block_head);
    hasher.update(chunk.unwrap_or_default());
    hasher.update(&tail);
    let block_len = block_head.len() as u64 + n + tail.len() as u64;
    Link { digest: hasher.finalize().into(), tsize: block_len, file_size: n }
}

/// A dag-pb internal node over `children`:
/// `PBNode { Links: [{Hash, Name: "", Tsize}], Data: UnixFS { Type: File, filesize, blocksizes } }`.
fn internal_node(children: &[Link]) -> Link {
    let mut block = Vec::with_capacity(children.len() * 48 + 16 + children.len() * 4);
    let mut tsize = 0u64;
    let mut file_size = 0u64;
    // dag-pb's canonical form puts Links (field 2) before Data (field 1).
    for child in children {
        let mut link = Vec::with_capacity(48);
        put_key(&mut link, 1, WIRE_LEN);
        put_varint(&mut link, (SHA2_256_PREFIX.len() + child.digest.len()) as u64);
        link.extend_from_slice(&SHA2_256_PREFIX);
        link.extend_from_slice(&child.digest);
        // go-merkledag always writes Name, even empty: leaving it out gives
        // different block bytes and so a CID Kubo never produces.
        put_key(&mut link, 2, WIRE_LEN);
        put_varint(&mut link, 0);
        put_key(&mut link, 3, WIRE_VARINT);
        put_varint(&mut link, child.tsize);

        put_key(&mut block, 2, WIRE_LEN);
        put_varint(&mut block, link.len() as u64);
        block.extend_from_slice(&link);
        tsize += child.tsize;
        file_size += child.file_size;
    }
    // UnixFS Data: Type (1), filesize (3), blocksizes (4, repeated, not packed:
    // the schema is proto2 without `packed=true`). No Data field: internal
    // nodes carry no bytes of their own.
    let mut unixfs = Vec::with_capacity(16 + children.len() * 4);
    put_key(&mut unixfs, 1, WIRE_VARINT);
    put_varint(&mut unixfs, UNIXFS_FILE);
    put_key(&mut unixfs, 3, WIRE_VARINT);
    put_varint(&mut unixfs, file_size);
    for child in children {
        put_key(&mut unixfs, 4, WIRE_VARINT);
        put_varint(&mut unixfs, child.file_size);
    }
    put_key(&mut block, 1, WIRE_LEN);
    put_varint(&mut block, unixfs.len() as u64);
    block.extend_from_slice(&unixfs);

    tsize += block.len() as u64;
    Link { digest: Sha256::digest(&block).into(), tsize, file_size }
}

/// Protobuf wire type of a varint field.
const WIRE_VARINT: u8 = 0;
/// Protobuf wire type of a length-delimited field.
const WIRE_LEN: u8 = 2;

/// Appends a protobuf field key; every field number here is below 16, so one byte.
fn put_key(out: &mut Vec<u8>, field: u8, wire_type: u8) {
    out.push((field << 3) | wire_type);
}

/// Appends `v` as a protobuf (LEB128) varint.
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// CIDv0: the base58btc text of the sha2-256 multihash of the root block.
fn cid_v0(digest: &[u8; 32]) -> Cid {
    let mut multihash = Vec::with_capacity(34);
    multihash.extend_from_slice(&SHA2_256_PREFIX);
    multihash.extend_from_slice(digest);
    // The base58 text of 0x12 0x20 + 32 bytes is always 46 characters starting "Qm".
    Cid::from_trusted(base58(&multihash))
}

/// Base58btc (Bitcoin alphabet), by repeated division of a big-endian number.
/// Inputs are 34 bytes, so the quadratic algorithm costs nothing.
fn base58(bytes: &[u8]) -> String {
    // Digits in base 58, least significant first.
    let mut digits: Vec<u8> = Vec::with_capacity(bytes.len() * 138 / 100 + 1);
    for &byte in bytes {
        let mut carry = u32::from(byte);
        for digit in digits.iter_mut() {
            carry += u32::from(*digit) << 8;
            *digit = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    // Each leading zero byte is written as a leading '1'.
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    let mut out = String::with_capacity(zeros + digits.len());
    out.extend(std::iter::repeat_n('1', zeros));
    out.extend(digits.iter().rev().map(|&d| char::from(BASE58_ALPHABET[usize::from(d)])));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `pattern(n)` (byte `i` is `i mod 251`, the note's test bytes) in
    /// `piece`-byte updates, which do not line up with chunk boundaries.
    fn pattern_cid(n: u64, piece: usize) -> String {
        // One buffer, sliced at the right phase, so debug-mode tests do not
        // spend their time generating bytes.
        let source: Vec<u8> = (0..piece + 251).map(|i| (i % 251) as u8).collect();
        let mut builder = CidBuilder::new();
        let mut fed = 0u64;
        while fed < n {
            let len = (n - fed).min(piece as u64) as usize;
            let phase = (fed % 251) as usize;
            builder.update(&source[phase..phase + len]);
            fed += len as u64;
        }
        assert_eq!(builder.bytes_len(), n);
        builder.finish().to_string()
    }

    fn cid_of(bytes: &[u8]) -> String {
        let mut builder = CidBuilder::new();
        builder.update(bytes);
        builder.finish().to_string()
    }

    #[test]
    fn the_empty_file_has_kubos_cid_not_the_one_with_an_empty_data_field() {
        assert_eq!(CidBuilder::new().finish().as_str(), "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH");
        assert_eq!(cid_of(b""), "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH");
    }

    #[test]
    fn a_single_byte_is_a_single_leaf() {
        assert_eq!(pattern_cid(1, 1), "QmS9JArPwa55ePgDnyg6TzX24mYTS1b1vLqWNebyVotKxQ");
    }

    #[test]
    fn hello_world_has_the_cid_kubo_prints() {
        assert_eq!(cid_of(b"hello world\n"), "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o");
    }

    #[test]
    fn exactly_one_chunk_is_still_a_single_leaf() {
        assert_eq!(pattern_cid(262_144, 100_000), "QmeqfRyS3vkku7n6krqC3DgGMex3x2sCpSeKMDmrG13QQq");
    }

    #[test]
    fn one_byte_past_a_chunk_makes_a_root_with_two_leaves() {
        assert_eq!(pattern_cid(262_145, 100_000), "QmUSjGawaz4ptvREcMKSMJneWCa5j8dAz2wSAAvHtW2rnB");
    }

    #[test]
    fn a_full_root_of_174_leaves_stays_one_level_deep() {
        assert_eq!(pattern_cid(174 * 262_144, 100_000), "QmXCym15aFeWjAWyPFaAgwVmkuKB7EBsV77Skt54KmxChF");
    }

    #[test]
    fn the_175th_chunk_pushes_the_full_tree_under_a_deeper_root() {
        assert_eq!(pattern_cid(174 * 262_144 + 1, 100_000), "QmTedsTekQQkgACJXb1sPZSW8bLdS9LPMrT7L4YdjNRd4n");
    }

    #[test]
    fn a_hundred_mebibytes_have_the_cid_kubo_prints() {
        assert_eq!(pattern_cid(100 * 1_048_576, 100_000), "Qmcpdrszo1FMiNRApgwy6Yn48zraWVWfnk4GDjQuTd1Dm1");
    }

    #[test]
    fn the_cid_does_not_depend_on_how_the_bytes_are_split() {
        let n = 2 * 262_144 + 1_000;
        let all: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        let mut byte_by_byte = CidBuilder::new();
        for b in &all {
            byte_by_byte.update(std::slice::from_ref(b));
        }
        let expected = cid_of(&all);
        assert_eq!(byte_by_byte.finish().to_string(), expected);
        assert_eq!(pattern_cid(n as u64, 262_144), expected);
        assert_eq!(pattern_cid(n as u64, 7_919), expected);
    }

    #[test]
    fn empty_updates_change_nothing() {
        let mut builder = CidBuilder::new();
        builder.update(b"");
        builder.update(b"hello world\n");
        builder.update(b"");
        assert_eq!(builder.finish().as_str(), "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o");
    }

    /// go-unixfs's `balanced.Layout` and `fillNodeRec`, transcribed over a list
    /// of leaves: the tree shape the streaming builder must reproduce.
    fn kubo_balanced_layout(leaves: &[Link], max_links: usize) -> Link {
        fn fill(leaves: &[Link], next: &mut usize, first: Option<Link>, depth: usize, max: usize) -> Link {
            let mut children: Vec<Link> = first.into_iter().collect();
            while children.len() < max && *next < leaves.len() {
                if depth == 1 {
                    children.push(leaves[*next]);
                    *next += 1;
                } else {
                    children.push(fill(leaves, next, None, depth - 1, max));
                }
            }
            internal_node(&children)
        }
        let Some(&first) = leaves.first() else {
            return leaf(None);
        };
        let mut root = first;
        let mut next = 1;
        let mut depth = 1;
        while next < leaves.len() {
            root = fill(leaves, &mut next, Some(root), depth, max_links);
            depth += 1;
        }
        root
    }

    #[test]
    fn trees_several_levels_deep_have_the_shape_of_kubos_balanced_layout() {
        // Fan-out 3 and 1-byte chunks: 0..=100 leaves cross depths 1 to 5, and
        // every point where a full tree moves under a new root (3, 9, 27, 81).
        for n in 0..=100u8 {
            let bytes: Vec<u8> = (0..n).collect();
            let leaves: Vec<Link> = bytes.iter().map(|b| leaf(Some(std::slice::from_ref(b)))).collect();
            let expected = cid_v0(&kubo_balanced_layout(&leaves, 3).digest);
            let mut builder = CidBuilder::with_shape(1, 3);
            builder.update(&bytes);
            assert_eq!(builder.finish(), expected, "{n} leaves");
        }
    }

    #[test]
    fn base58_keeps_leading_zero_bytes_as_ones() {
        assert_eq!(base58(&[0, 0, 1]), "112");
        assert_eq!(base58(b"hello world"), "StV1DL6CwTryKyV");
    }
}
