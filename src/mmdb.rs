//! A writer for the MaxMind DB file format, version 2.0.
//!
//! stepup's tests, demo and traffic generator need real `.mmdb` files that the
//! [`maxminddb`] reader (the same one the enrichment stage uses in production)
//! opens exactly like a GeoLite2 or DB-IP database. [`MmdbWriter`] builds such a
//! file in memory; [`crate::geo_fixture`] uses it for the project's fixture
//! databases.
//!
//! # Layout of the file produced
//!
//! 1. **Binary search tree.** One node per prefix bit, two records (left = bit 0,
//!    right = bit 1) per node. A record holds either another node's number, the
//!    value `node_count` ("no data"), or `node_count + 16 + offset` pointing into
//!    the data section. The smallest record size (24, 28 or 32 bits) that can hold
//!    every record value is chosen automatically. Nodes are numbered breadth-first
//!    from the root, which is node 0.
//! 2. **Sixteen zero bytes** separating the tree from the data section.
//! 3. **Data section.** Values in the format's typed encoding. Every distinct
//!    value (each record, and each key, string or sub-structure within it) is
//!    written once; later occurrences become pointers when a pointer is shorter.
//! 4. **Metadata**, after the marker `"\xAB\xCD\xEFMaxMind.com"`: `node_count`,
//!    `record_size`, `ip_version`, `database_type`, `languages`,
//!    `binary_format_major_version` (2), `binary_format_minor_version` (0),
//!    `build_epoch` and `description`.
//!
//! # IPv4 in an IPv6 database
//!
//! With `ip_version` 6, IPv4 network `a.b.c.d/n` is stored at `::a.b.c.d/(96+n)`,
//! where the reader looks for IPv4 addresses. As in MaxMind's own databases, the
//! IPv4-mapped range `::ffff:0:0/96` and the 6to4 range `2002::/16` are aliased to
//! that IPv4 subtree (unless disabled with [`MmdbWriter::with_ipv4_aliases`]), so
//! `::ffff:1.2.3.4` and `2002:0102:0304::` resolve like `1.2.3.4`. An alias is
//! only added where no inserted IPv6 network already covers its range.
//!
//! # Overlapping networks
//!
//! The last insert wins for every address it covers: a more specific network
//! inserted after a broader one carves a hole out of it, while a broader network
//! inserted after more specific ones replaces them.
//!
//! # Example
//!
//! ```
//! use stepup::mmdb::{MmdbWriter, Value};
//!
//! let mut w = MmdbWriter::new("Example-ASN", 6);
//! w.insert(
//!     "198.51.100.0/24".parse().unwrap(),
//!     Value::Map(vec![
//!         ("autonomous_system_number".into(), Value::U32(64500)),
//!         ("autonomous_system_organization".into(), Value::from("Example Net")),
//!     ]),
//! )
//! .unwrap();
//! let bytes = w.to_bytes().unwrap();
//! let reader = maxminddb::Reader::from_source(bytes).unwrap();
//! let hit = reader.lookup("198.51.100.7".parse().unwrap()).unwrap();
//! assert!(hit.has_data());
//! ```

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use ipnetwork::IpNetwork;

/// Marker that precedes the metadata section.
const METADATA_MARKER: &[u8] = b"\xAB\xCD\xEFMaxMind.com";
/// Size of the all-zero separator between search tree and data section.
const DATA_SECTION_SEPARATOR: usize = 16;
/// Largest size a control byte can express (strings, bytes, map and array lengths).
const MAX_SIZE: usize = 65_821 + (1 << 24) - 1;

// Data type numbers of the format. Types above 7 are "extended".
const TYPE_POINTER: u8 = 1;
const TYPE_STRING: u8 = 2;
const TYPE_DOUBLE: u8 = 3;
const TYPE_BYTES: u8 = 4;
const TYPE_UINT16: u8 = 5;
const TYPE_UINT32: u8 = 6;
const TYPE_MAP: u8 = 7;
const TYPE_INT32: u8 = 8;
const TYPE_UINT64: u8 = 9;
const TYPE_UINT128: u8 = 10;
const TYPE_ARRAY: u8 = 11;
const TYPE_BOOL: u8 = 14;
const TYPE_FLOAT: u8 = 15;

/// A value of the MaxMind DB data section.
///
/// Each variant maps onto one type of the format; choose the variant whose type
/// the reader expects (GeoLite2 stores `accuracy_radius` as `U16`, coordinates
/// as `F64`; DB-IP Lite via ip-location-db stores coordinates as `F32`).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A map with UTF-8 string keys, written in the order given. Keys must be unique.
    Map(Vec<(String, Value)>),
    /// A UTF-8 string.
    Str(String),
    /// A 64-bit IEEE 754 float (format type "double").
    F64(f64),
    /// A 32-bit IEEE 754 float (format type "float").
    F32(f32),
    /// An unsigned 16-bit integer.
    U16(u16),
    /// An unsigned 32-bit integer.
    U32(u32),
    /// A signed 32-bit integer.
    I32(i32),
    /// An unsigned 64-bit integer.
    U64(u64),
    /// An unsigned 128-bit integer.
    U128(u128),
    /// A boolean.
    Bool(bool),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// An array of values.
    Array(Vec<Value>),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

/// Errors building a MaxMind DB file.
#[derive(thiserror::Error, Debug)]
pub enum MmdbError {
    /// `ip_version` given to [`MmdbWriter::new`] is neither 4 nor 6.
    #[error("unsupported ip_version {0}: expected 4 or 6")]
    UnsupportedIpVersion(u16),
    /// An IPv6 network was inserted into an IPv4-only database.
    #[error("cannot insert IPv6 network {0} into an IPv4 (ip_version 4) database")]
    Ipv6InIpv4Database(IpNetwork),
    /// [`MmdbWriter::with_min_record_size`] was given something other than 24, 28 or 32.
    #[error("unsupported record size {0}: expected 24, 28 or 32")]
    UnsupportedRecordSize(u16),
    /// A map has the same key twice.
    #[error("duplicate map key {0:?}")]
    DuplicateKey(String),
    /// A string, byte string, map or array is longer than the format allows.
    #[error("{what} of length {len} exceeds the format's maximum of {MAX_SIZE}")]
    ValueTooLong {
        /// Kind of value.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// The tree plus data section do not fit in 32-bit records.
    #[error("database too large: record value {0} does not fit in 32 bits")]
    DatabaseTooLarge(u64),
}

/// One record of a search-tree node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Record {
    /// No data for this range.
    Empty,
    /// Index into `MmdbWriter::nodes`.
    Node(usize),
    /// Index into `MmdbWriter::values`.
    Data(usize),
}

/// Builds a MaxMind DB (`.mmdb`) file in memory.
///
/// Create it with [`MmdbWriter::new`], optionally adjust metadata with the
/// `with_*` methods, [`insert`](MmdbWriter::insert) networks, then call
/// [`to_bytes`](MmdbWriter::to_bytes).
#[derive(Debug, Clone)]
pub struct MmdbWriter {
    database_type: String,
    ip_version: u16,
    languages: Vec<String>,
    description: Vec<(String, String)>,
    build_epoch: Option<u64>,
    ipv4_aliases: bool,
    min_record_size: u16,
    /// Tree nodes; node 0 is the root. Nodes orphaned by overlapping inserts are
    /// left here and dropped when serializing.
    nodes: Vec<[Record; 2]>,
    /// Inserted values, one per insert; identical values are merged when serializing.
    values: Vec<Value>,
}

impl MmdbWriter {
    /// A new, empty database of the given `database_type` (e.g. `"GeoLite2-City"`).
    ///
    /// `ip_version` is 6 (IPv6 tree, IPv4 networks stored under `::/96`, the layout
    /// of MaxMind's own databases) or 4 (IPv4-only tree). Any other value makes
    /// [`insert`](Self::insert) and [`to_bytes`](Self::to_bytes) fail with
    /// [`MmdbError::UnsupportedIpVersion`].
    ///
    /// The description defaults to `{"en": database_type}` and the build epoch to
    /// the time [`to_bytes`](Self::to_bytes) runs.
    pub fn new(database_type: &str, ip_version: u16) -> Self {
        MmdbWriter {
            database_type: database_type.to_owned(),
            ip_version,
            languages: Vec::new(),
            description: vec![("en".to_owned(), database_type.to_owned())],
            build_epoch: None,
            ipv4_aliases: true,
            min_record_size: 24,
            nodes: vec![[Record::Empty; 2]],
            values: Vec::new(),
        }
    }

    /// Sets the metadata `languages` list (locale codes used in `names` maps).
    pub fn with_languages<I, S>(mut self, languages: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.languages = languages.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the metadata `description` (language code → text), replacing the default.
    pub fn with_description<I, K, V>(mut self, description: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.description = description.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        self
    }

    /// Sets the metadata `build_epoch` (seconds since the Unix epoch); a fixed
    /// value makes the output byte-for-byte reproducible.
    pub fn with_build_epoch(mut self, epoch: u64) -> Self {
        self.build_epoch = Some(epoch);
        self
    }

    /// Enables (the default) or disables aliasing `::ffff:0:0/96` and `2002::/16`
    /// to the IPv4 subtree in an IPv6 database.
    pub fn with_ipv4_aliases(mut self, enabled: bool) -> Self {
        self.ipv4_aliases = enabled;
        self
    }

    /// Uses records of at least `bits` (24, 28 or 32) even when smaller ones would
    /// do; mostly for tests. Other values make [`to_bytes`](Self::to_bytes) fail
    /// with [`MmdbError::UnsupportedRecordSize`].
    pub fn with_min_record_size(mut self, bits: u16) -> Self {
        self.min_record_size = bits;
        self
    }

    /// The `database_type` this writer was created with.
    pub fn database_type(&self) -> &str {
        &self.database_type
    }

    /// The `ip_version` this writer was created with.
    pub fn ip_version(&self) -> u16 {
        self.ip_version
    }

    /// Associates `value` with every address of `net` (host bits are ignored).
    ///
    /// Overlaps follow "last insert wins" (see the module docs).
    pub fn insert(&mut self, net: IpNetwork, value: Value) -> Result<(), MmdbError> {
        check_value(&value)?;
        let (bits, prefix, width) = self.tree_key(net)?;
        let data = Record::Data(self.values.len());
        self.values.push(value);

        if prefix == 0 {
            self.nodes[0] = [data; 2];
            return Ok(());
        }
        let bit = |depth: u8| usize::from((bits >> (width - 1 - depth)) & 1 == 1);
        let mut node = 0;
        for depth in 0..prefix - 1 {
            let side = bit(depth);
            node = match self.nodes[node][side] {
                Record::Node(next) => next,
                // Descend into an empty range, or split a broader network's
                // range so both halves keep its data.
                filler @ (Record::Empty | Record::Data(_)) => {
                    let next = self.nodes.len();
                    self.nodes.push([filler; 2]);
                    self.nodes[node][side] = Record::Node(next);
                    next
                }
            };
        }
        self.nodes[node][bit(prefix - 1)] = data;
        Ok(())
    }

    /// Serializes the database: search tree, separator, data section, metadata.
    pub fn to_bytes(&self) -> Result<Vec<u8>, MmdbError> {
        self.check_ip_version()?;
        let mut nodes = self.nodes.clone();
        if self.ip_version == 6 && self.ipv4_aliases {
            add_ipv4_aliases(&mut nodes);
        }

        // Number the reachable nodes breadth-first from the root (node 0).
        let mut order = Vec::new();
        let mut new_index = HashMap::new();
        let mut queue = VecDeque::from([0usize]);
        new_index.insert(0usize, 0usize);
        while let Some(old) = queue.pop_front() {
            order.push(old);
            for record in nodes[old] {
                if let Record::Node(child) = record {
                    if !new_index.contains_key(&child) {
                        new_index.insert(child, new_index.len());
                        queue.push_back(child);
                    }
                }
            }
        }

        // Write the data section in tree order, one copy per distinct value.
        let mut data = DataSection::default();
        let mut value_offsets: HashMap<usize, usize> = HashMap::new();
        for &old in &order {
            for record in nodes[old] {
                if let Record::Data(v) = record {
                    if let std::collections::hash_map::Entry::Vacant(e) = value_offsets.entry(v) {
                        e.insert(data.store(&self.values[v])?);
                    }
                }
            }
        }

        let node_count = order.len() as u64;
        let largest = node_count + DATA_SECTION_SEPARATOR as u64 + data.buf.len() as u64;
        if !matches!(self.min_record_size, 24 | 28 | 32) {
            return Err(MmdbError::UnsupportedRecordSize(self.min_record_size));
        }
        let record_size: u16 = match largest {
            l if l < 1 << 24 => 24,
            l if l < 1 << 28 => 28,
            l if l <= u64::from(u32::MAX) => 32,
            l => return Err(MmdbError::DatabaseTooLarge(l)),
        }
        .max(self.min_record_size);
        let record_value = |record: Record| -> u32 {
            // Every value is at most `largest`, checked above to fit in u32.
            let v = match record {
                Record::Empty => node_count,
                Record::Node(n) => new_index[&n] as u64,
                Record::Data(v) => node_count + DATA_SECTION_SEPARATOR as u64 + value_offsets[&v] as u64,
            };
            v as u32
        };

        let tree_len = order.len() * usize::from(record_size) / 4;
        let mut out = Vec::with_capacity(tree_len + DATA_SECTION_SEPARATOR + data.buf.len() + 512);
        for &old in &order {
            let [left, right] = nodes[old].map(record_value);
            write_node(&mut out, record_size, left, right);
        }
        out.extend_from_slice(&[0u8; DATA_SECTION_SEPARATOR]);
        out.extend_from_slice(&data.buf);
        out.extend_from_slice(METADATA_MARKER);
        let metadata = self.metadata(node_count, record_size);
        encode_inline(&metadata, &mut out)?;
        Ok(out)
    }

    fn check_ip_version(&self) -> Result<(), MmdbError> {
        match self.ip_version {
            4 | 6 => Ok(()),
            v => Err(MmdbError::UnsupportedIpVersion(v)),
        }
    }

    /// The network's position in the tree: address bits, prefix length and tree width.
    fn tree_key(&self, net: IpNetwork) -> Result<(u128, u8, u8), MmdbError> {
        self.check_ip_version()?;
        Ok(match (self.ip_version, net.network()) {
            (4, IpAddr::V4(a)) => (u128::from(u32::from(a)), net.prefix(), 32),
            (4, IpAddr::V6(_)) => return Err(MmdbError::Ipv6InIpv4Database(net)),
            (_, IpAddr::V4(a)) => (u128::from(u32::from(a)), 96 + net.prefix(), 128),
            (_, IpAddr::V6(a)) => (u128::from(a), net.prefix(), 128),
        })
    }

    fn metadata(&self, node_count: u64, record_size: u16) -> Value {
        let build_epoch = self.build_epoch.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        });
        Value::Map(vec![
            ("binary_format_major_version".into(), Value::U16(2)),
            ("binary_format_minor_version".into(), Value::U16(0)),
            ("build_epoch".into(), Value::U64(build_epoch)),
            ("database_type".into(), Value::Str(self.database_type.clone())),
            (
                "description".into(),
                Value::Map(
                    self.description
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::Str(v.clone())))
                        .collect(),
                ),
            ),
            ("ip_version".into(), Value::U16(self.ip_version)),
            (
                "languages".into(),
                Value::Array(self.languages.iter().cloned().map(Value::Str).collect()),
            ),
            // Node counts beyond u32 cannot occur: they'd fail the record-size check.
            ("node_count".into(), Value::U32(node_count as u32)),
            ("record_size".into(), Value::U16(record_size)),
        ])
    }
}

/// Points `::ffff:0:0/96` and `2002::/16` at the IPv4 subtree (`::/96`) when
/// that subtree is a node and the alias range is otherwise unused.
fn add_ipv4_aliases(nodes: &mut Vec<[Record; 2]>) {
    let mut node = 0;
    for _ in 0..96 {
        match nodes[node][0] {
            Record::Node(next) => node = next,
            _ => return,
        }
    }
    let ipv4_root = node;
    // (address bits, prefix length) of each alias range.
    let aliases: [(u128, u8); 2] = [(0xffff_u128 << 32, 96), (0x2002_u128 << 112, 16)];
    'alias: for (bits, prefix) in aliases {
        let bit = |depth: u8| usize::from((bits >> (127 - depth)) & 1 == 1);
        let mut node = 0;
        for depth in 0..prefix - 1 {
            let side = bit(depth);
            node = match nodes[node][side] {
                Record::Node(next) => next,
                Record::Empty => {
                    let next = nodes.len();
                    nodes.push([Record::Empty; 2]);
                    nodes[node][side] = Record::Node(next);
                    next
                }
                Record::Data(_) => continue 'alias,
            };
        }
        let last = &mut nodes[node][bit(prefix - 1)];
        if *last == Record::Empty {
            *last = Record::Node(ipv4_root);
        }
    }
}

/// Appends one node with the given record size (24, 28 or 32 bits).
fn write_node(out: &mut Vec<u8>, record_size: u16, left: u32, right: u32) {
    let l = left.to_be_bytes();
    let r = right.to_be_bytes();
    match record_size {
        24 => {
            out.extend_from_slice(&l[1..]);
            out.extend_from_slice(&r[1..]);
        }
        28 => {
            out.extend_from_slice(&l[1..]);
            out.push(((l[0] & 0x0f) << 4) | (r[0] & 0x0f));
            out.extend_from_slice(&r[1..]);
        }
        _ => {
            out.extend_from_slice(&l);
            out.extend_from_slice(&r);
        }
    }
}

/// Rejects values the format cannot represent, before they enter the tree.
fn check_value(value: &Value) -> Result<(), MmdbError> {
    let check_len = |what, len| {
        if len > MAX_SIZE {
            Err(MmdbError::ValueTooLong { what, len })
        } else {
            Ok(())
        }
    };
    match value {
        Value::Str(s) => check_len("string", s.len()),
        Value::Bytes(b) => check_len("bytes", b.len()),
        Value::Array(items) => {
            check_len("array", items.len())?;
            items.iter().try_for_each(check_value)
        }
        Value::Map(entries) => {
            check_len("map", entries.len())?;
            let mut seen = HashSet::new();
            for (key, item) in entries {
                check_len("string", key.len())?;
                if !seen.insert(key.as_str()) {
                    return Err(MmdbError::DuplicateKey(key.clone()));
                }
                check_value(item)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Appends a control byte (plus extended-type and size bytes).
fn write_header(out: &mut Vec<u8>, type_num: u8, size: usize) -> Result<(), MmdbError> {
    let (type_bits, extended) = if type_num <= 7 {
        (type_num << 5, None)
    } else {
        (0, Some(type_num - 7))
    };
    let (size_bits, size_bytes): (u8, Vec<u8>) = match size {
        s if s < 29 => (s as u8, vec![]),
        s if s < 285 => (29, vec![(s - 29) as u8]),
        s if s < 65_821 => (30, ((s - 285) as u16).to_be_bytes().to_vec()),
        s if s <= MAX_SIZE => (31, ((s - 65_821) as u32).to_be_bytes()[1..].to_vec()),
        len => return Err(MmdbError::ValueTooLong { what: "value", len }),
    };
    out.push(type_bits | size_bits);
    out.extend(extended);
    out.extend_from_slice(&size_bytes);
    Ok(())
}

/// Appends an unsigned integer with leading zero bytes dropped.
fn write_uint(out: &mut Vec<u8>, type_num: u8, be_bytes: &[u8]) -> Result<(), MmdbError> {
    let first = be_bytes.iter().position(|&b| b != 0).unwrap_or(be_bytes.len());
    let payload = &be_bytes[first..];
    write_header(out, type_num, payload.len())?;
    out.extend_from_slice(payload);
    Ok(())
}

/// Appends a scalar value; returns `false` (writing nothing) for maps and arrays.
fn encode_scalar(value: &Value, out: &mut Vec<u8>) -> Result<bool, MmdbError> {
    match value {
        Value::Str(s) => {
            write_header(out, TYPE_STRING, s.len())?;
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bytes(b) => {
            write_header(out, TYPE_BYTES, b.len())?;
            out.extend_from_slice(b);
        }
        Value::F64(f) => {
            write_header(out, TYPE_DOUBLE, 8)?;
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::F32(f) => {
            write_header(out, TYPE_FLOAT, 4)?;
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::U16(n) => write_uint(out, TYPE_UINT16, &n.to_be_bytes())?,
        Value::U32(n) => write_uint(out, TYPE_UINT32, &n.to_be_bytes())?,
        Value::U64(n) => write_uint(out, TYPE_UINT64, &n.to_be_bytes())?,
        Value::U128(n) => write_uint(out, TYPE_UINT128, &n.to_be_bytes())?,
        // A negative int32 needs all four bytes: the reader pads short values with
        // zeros, so only non-negative values may drop leading zero bytes.
        Value::I32(n) if *n >= 0 => write_uint(out, TYPE_INT32, &n.to_be_bytes())?,
        Value::I32(n) => {
            write_header(out, TYPE_INT32, 4)?;
            out.extend_from_slice(&n.to_be_bytes());
        }
        Value::Bool(b) => write_header(out, TYPE_BOOL, usize::from(*b))?,
        Value::Map(_) | Value::Array(_) => return Ok(false),
    }
    Ok(true)
}

/// Appends the self-contained encoding of `value` (no pointers). Used for the
/// metadata section and as the de-duplication key of the data section.
fn encode_inline(value: &Value, out: &mut Vec<u8>) -> Result<(), MmdbError> {
    match value {
        Value::Map(entries) => {
            write_header(out, TYPE_MAP, entries.len())?;
            for (key, item) in entries {
                write_header(out, TYPE_STRING, key.len())?;
                out.extend_from_slice(key.as_bytes());
                encode_inline(item, out)?;
            }
        }
        Value::Array(items) => {
            write_header(out, TYPE_ARRAY, items.len())?;
            for item in items {
                encode_inline(item, out)?;
            }
        }
        scalar => {
            encode_scalar(scalar, out)?;
        }
    }
    Ok(())
}

/// Encoded length of a pointer to `offset`.
fn pointer_len(offset: usize) -> usize {
    match offset {
        o if o < 2_048 => 2,
        o if o < 526_336 => 3,
        o if o < 134_744_064 => 4,
        _ => 5,
    }
}

/// Appends a pointer to data-section `offset`.
fn write_pointer(out: &mut Vec<u8>, offset: usize) {
    let ctrl = TYPE_POINTER << 5;
    match offset {
        o if o < 2_048 => out.extend_from_slice(&[ctrl | (o >> 8) as u8, o as u8]),
        o if o < 526_336 => {
            let q = o - 2_048;
            out.extend_from_slice(&[ctrl | 0x08 | (q >> 16) as u8, (q >> 8) as u8, q as u8]);
        }
        o if o < 134_744_064 => {
            let q = o - 526_336;
            out.extend_from_slice(&[ctrl | 0x10 | (q >> 24) as u8, (q >> 16) as u8, (q >> 8) as u8, q as u8]);
        }
        // Offsets are bounded by the 32-bit record check in `to_bytes`.
        o => {
            out.push(ctrl | 0x18);
            out.extend_from_slice(&(o as u32).to_be_bytes());
        }
    }
}

/// The data section under construction, with a cache from each value's inline
/// encoding to the offset where a (non-pointer) copy of it starts.
#[derive(Default)]
struct DataSection {
    buf: Vec<u8>,
    cache: HashMap<Vec<u8>, usize>,
}

impl DataSection {
    /// Returns the offset of a copy of `value`, writing it if there is none yet.
    fn store(&mut self, value: &Value) -> Result<usize, MmdbError> {
        let mut key = Vec::new();
        encode_inline(value, &mut key)?;
        if let Some(&offset) = self.cache.get(&key) {
            return Ok(offset);
        }
        let offset = self.buf.len();
        self.write_value(value)?;
        self.cache.insert(key, offset);
        Ok(offset)
    }

    /// Writes `value` at the end of the section; its members may become pointers.
    fn write_value(&mut self, value: &Value) -> Result<(), MmdbError> {
        match value {
            Value::Map(entries) => {
                write_header(&mut self.buf, TYPE_MAP, entries.len())?;
                for (key, item) in entries {
                    let mut key_bytes = Vec::with_capacity(key.len() + 4);
                    write_header(&mut key_bytes, TYPE_STRING, key.len())?;
                    key_bytes.extend_from_slice(key.as_bytes());
                    self.write_member(key_bytes, |section| {
                        write_header(&mut section.buf, TYPE_STRING, key.len())?;
                        section.buf.extend_from_slice(key.as_bytes());
                        Ok(())
                    })?;
                    self.write_child(item)?;
                }
            }
            Value::Array(items) => {
                write_header(&mut self.buf, TYPE_ARRAY, items.len())?;
                for item in items {
                    self.write_child(item)?;
                }
            }
            scalar => {
                encode_scalar(scalar, &mut self.buf)?;
            }
        }
        Ok(())
    }

    fn write_child(&mut self, value: &Value) -> Result<(), MmdbError> {
        let mut key = Vec::new();
        encode_inline(value, &mut key)?;
        self.write_member(key, |section| section.write_value(value))
    }

    /// Writes a map key, map value or array element whose inline encoding is
    /// `key`: as a pointer to an earlier copy when that is shorter, else in place
    /// (remembering where, for later copies).
    fn write_member(
        &mut self,
        key: Vec<u8>,
        write: impl FnOnce(&mut Self) -> Result<(), MmdbError>,
    ) -> Result<(), MmdbError> {
        if let Some(&offset) = self.cache.get(&key) {
            if pointer_len(offset) < key.len() {
                write_pointer(&mut self.buf, offset);
                return Ok(());
            }
        }
        let offset = self.buf.len();
        write(self)?;
        self.cache.entry(key).or_insert(offset);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use maxminddb::{Reader, WithinOptions};
    use serde::Deserialize;
    use std::collections::BTreeMap;

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn city(name: &str, lat: f64) -> Value {
        Value::Map(vec![
            (
                "city".into(),
                Value::Map(vec![(
                    "names".into(),
                    Value::Map(vec![("en".into(), Value::from(name))]),
                )]),
            ),
            (
                "location".into(),
                Value::Map(vec![
                    ("latitude".into(), Value::F64(lat)),
                    ("accuracy_radius".into(), Value::U16(20)),
                ]),
            ),
        ])
    }

    fn lookup_city(reader: &Reader<Vec<u8>>, addr: &str) -> Option<(String, f64)> {
        let hit = reader.lookup(ip(addr)).unwrap();
        let city: maxminddb::geoip2::City = hit.decode().unwrap()?;
        Some((
            city.city.names.english.unwrap().to_owned(),
            city.location.latitude.unwrap(),
        ))
    }

    #[test]
    fn ipv6_database_round_trip() {
        let mut w = MmdbWriter::new("Test-City", 6)
            .with_languages(["en"])
            .with_build_epoch(1_700_000_000);
        w.insert(net("81.0.0.0/20"), city("Lisbon", 38.72)).unwrap();
        w.insert(net("81.0.16.0/20"), city("Porto", 41.15)).unwrap();
        w.insert(net("2a0a:1000::/48"), city("Lisbon", 38.72)).unwrap();
        let reader = Reader::from_source(w.to_bytes().unwrap()).unwrap();
        reader.verify().unwrap();

        let md = reader.metadata();
        assert_eq!(md.database_type, "Test-City");
        assert_eq!(md.ip_version, 6);
        assert_eq!(md.binary_format_major_version, 2);
        assert_eq!(md.build_epoch, 1_700_000_000);
        assert_eq!(md.languages, vec!["en".to_owned()]);

        assert_eq!(lookup_city(&reader, "81.0.3.4"), Some(("Lisbon".into(), 38.72)));
        assert_eq!(lookup_city(&reader, "81.0.31.255"), Some(("Porto".into(), 41.15)));
        assert_eq!(
            lookup_city(&reader, "2a0a:1000:0:ff::1"),
            Some(("Lisbon".into(), 38.72))
        );
        // IPv4-mapped and 6to4 aliases resolve to the IPv4 data.
        assert_eq!(lookup_city(&reader, "::ffff:81.0.16.1"), Some(("Porto".into(), 41.15)));
        assert_eq!(lookup_city(&reader, "2002:5100:1001::1"), Some(("Porto".into(), 41.15)));
        // Misses.
        for miss in ["81.0.32.0", "80.255.255.255", "1.2.3.4", "2a0a:1000:1::1", "::1"] {
            let hit = reader.lookup(ip(miss)).unwrap();
            assert!(!hit.has_data(), "{miss} should have no data");
        }
        // The network reported for a hit is the inserted one.
        let hit = reader.lookup(ip("81.0.3.4")).unwrap();
        assert_eq!(hit.network().unwrap(), net("81.0.0.0/20"));
    }

    #[test]
    fn networks_iteration_yields_inserted_networks() {
        let mut w = MmdbWriter::new("Test", 6).with_build_epoch(1);
        let inserted = ["10.0.0.0/8", "192.0.2.0/24", "2001:db8::/32"];
        for (i, n) in inserted.iter().enumerate() {
            w.insert(net(n), Value::U32(i as u32)).unwrap();
        }
        let reader = Reader::from_source(w.to_bytes().unwrap()).unwrap();
        reader.verify().unwrap();
        let mut seen = Vec::new();
        for item in reader.networks(WithinOptions::default()).unwrap() {
            let item = item.unwrap();
            let v: u32 = item.decode().unwrap().unwrap();
            seen.push((item.network().unwrap().to_string(), v));
        }
        seen.sort();
        let mut want: Vec<(String, u32)> = inserted
            .iter()
            .enumerate()
            .map(|(i, n)| (net(n).to_string(), i as u32))
            .collect();
        want.sort();
        assert_eq!(seen, want);
    }

    #[test]
    fn ipv4_database_and_overlaps() {
        let mut w = MmdbWriter::new("Test-V4", 4).with_build_epoch(1);
        w.insert(net("198.51.100.0/24"), Value::from("broad")).unwrap();
        w.insert(net("198.51.100.128/25"), Value::from("carved")).unwrap();
        w.insert(net("203.0.113.0/26"), Value::from("small")).unwrap();
        w.insert(net("203.0.113.0/24"), Value::from("replaces")).unwrap();
        let reader = Reader::from_source(w.to_bytes().unwrap()).unwrap();
        reader.verify().unwrap();
        assert_eq!(reader.metadata().ip_version, 4);
        let get = |a: &str| -> Option<String> { reader.lookup(ip(a)).unwrap().decode().unwrap() };
        assert_eq!(get("198.51.100.1").as_deref(), Some("broad"));
        assert_eq!(get("198.51.100.200").as_deref(), Some("carved"));
        assert_eq!(get("203.0.113.5").as_deref(), Some("replaces"));
        assert_eq!(get("203.0.113.250").as_deref(), Some("replaces"));
        assert_eq!(get("8.8.8.8"), None);
        assert!(matches!(
            w.insert(net("2001:db8::/32"), Value::Bool(true)),
            Err(MmdbError::Ipv6InIpv4Database(_))
        ));
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct AllTypes {
        s: String,
        f64: f64,
        f32: f32,
        u16: u16,
        u32: u32,
        i32: i32,
        neg: i32,
        u64: u64,
        u128: u128,
        t: bool,
        f: bool,
        #[serde(with = "serde_bytes_compat")]
        bytes: Vec<u8>,
        arr: Vec<u32>,
        nested: BTreeMap<String, BTreeMap<String, String>>,
        long: String,
        empty: String,
    }

    /// Decodes MMDB bytes (visited as borrowed bytes) into a `Vec<u8>`.
    mod serde_bytes_compat {
        use serde::de::{Deserializer, Error, Visitor};
        use std::fmt;

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Vec<u8>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                    Ok(v.to_vec())
                }
            }
            d.deserialize_bytes(V)
        }
    }

    #[test]
    fn every_type_round_trips() {
        let long = "x".repeat(70_000);
        let value = Value::Map(vec![
            ("s".into(), Value::from("São Paulo")),
            ("f64".into(), Value::F64(-23.5505)),
            ("f32".into(), Value::F32(-46.6333)),
            ("u16".into(), Value::U16(65_535)),
            ("u32".into(), Value::U32(4_000_000_000)),
            ("i32".into(), Value::I32(12)),
            ("neg".into(), Value::I32(-7)),
            ("u64".into(), Value::U64(u64::MAX)),
            ("u128".into(), Value::U128(u128::MAX - 1)),
            ("t".into(), Value::Bool(true)),
            ("f".into(), Value::Bool(false)),
            ("bytes".into(), Value::Bytes(vec![0, 1, 2, 255])),
            ("arr".into(), Value::Array((0..40).map(Value::U32).collect())),
            (
                "nested".into(),
                Value::Map(vec![(
                    "names".into(),
                    Value::Map(vec![
                        ("en".into(), Value::from("Tokyo")),
                        ("ja".into(), Value::from("東京")),
                    ]),
                )]),
            ),
            ("long".into(), Value::Str(long.clone())),
            ("empty".into(), Value::from("")),
        ]);
        let mut w = MmdbWriter::new("Types", 6).with_build_epoch(1);
        w.insert(net("2001:db8::/64"), value).unwrap();
        let reader = Reader::from_source(w.to_bytes().unwrap()).unwrap();
        reader.verify().unwrap();
        let got: AllTypes = reader.lookup(ip("2001:db8::5")).unwrap().decode().unwrap().unwrap();
        assert_eq!(got.s, "São Paulo");
        assert_eq!(got.f64, -23.5505);
        assert_eq!(got.f32, -46.6333_f32);
        assert_eq!((got.u16, got.u32, got.i32, got.neg), (65_535, 4_000_000_000, 12, -7));
        assert_eq!((got.u64, got.u128), (u64::MAX, u128::MAX - 1));
        assert!(got.t && !got.f);
        assert_eq!(got.bytes, vec![0, 1, 2, 255]);
        assert_eq!(got.arr, (0..40).collect::<Vec<u32>>());
        assert_eq!(got.nested["names"]["ja"], "東京");
        assert_eq!(got.long, long);
        assert_eq!(got.empty, "");
    }

    #[test]
    fn identical_values_are_stored_once() {
        let big = |name: &str| {
            Value::Map(vec![
                ("name".into(), Value::from(name)),
                ("padding".into(), Value::Str("p".repeat(500))),
            ])
        };
        let mut one = MmdbWriter::new("Dedup", 4).with_build_epoch(1);
        one.insert(net("192.0.2.0/24"), big("a")).unwrap();
        let single = one.to_bytes().unwrap().len();

        let mut many = MmdbWriter::new("Dedup", 4).with_build_epoch(1);
        for i in 0..50u8 {
            many.insert(net(&format!("10.{i}.0.0/16")), big("a")).unwrap();
        }
        // A second record sharing the padding string points to it.
        many.insert(net("192.0.2.0/24"), big("b")).unwrap();
        let bytes = many.to_bytes().unwrap();
        assert!(
            bytes.len() < single + 50 * 16 * 6 + 100,
            "{} bytes: values were not de-duplicated",
            bytes.len()
        );
        let reader = Reader::from_source(bytes).unwrap();
        reader.verify().unwrap();
        let hit = reader.lookup(ip("10.49.1.1")).unwrap();
        let other = reader.lookup(ip("10.0.1.1")).unwrap();
        assert_eq!(hit.offset(), other.offset());
        let b: BTreeMap<String, String> = reader.lookup(ip("192.0.2.9")).unwrap().decode().unwrap().unwrap();
        assert_eq!(b["name"], "b");
        assert_eq!(b["padding"].len(), 500);
    }

    #[test]
    fn large_databases_use_wider_records() {
        // Enough distinct values to push record values past 2^24.
        let mut w = MmdbWriter::new("Wide", 6).with_build_epoch(1);
        let filler = "z".repeat(60_000);
        for i in 0..300u32 {
            w.insert(
                net(&format!("2001:db8:0:{i:x}::/64")),
                Value::Str(format!("{i}{filler}")),
            )
            .unwrap();
        }
        let reader = Reader::from_source(w.to_bytes().unwrap()).unwrap();
        assert_eq!(reader.metadata().record_size, 28);
        reader.verify().unwrap();
        let s: String = reader
            .lookup(ip("2001:db8:0:12b::1"))
            .unwrap()
            .decode()
            .unwrap()
            .unwrap();
        assert!(s.starts_with("299z"));
    }

    #[test]
    fn every_record_size_reads_back() {
        for bits in [24, 28, 32] {
            let mut w = MmdbWriter::new("Sizes", 6)
                .with_build_epoch(1)
                .with_min_record_size(bits);
            w.insert(net("81.0.0.0/20"), city("Lisbon", 38.72)).unwrap();
            w.insert(net("2a0a:1000::/48"), city("Porto", 41.15)).unwrap();
            let reader = Reader::from_source(w.to_bytes().unwrap()).unwrap();
            assert_eq!(reader.metadata().record_size, bits);
            reader.verify().unwrap();
            assert_eq!(lookup_city(&reader, "81.0.15.255"), Some(("Lisbon".into(), 38.72)));
            assert_eq!(lookup_city(&reader, "2a0a:1000::1"), Some(("Porto".into(), 41.15)));
            assert!(!reader.lookup(ip("81.0.16.0")).unwrap().has_data());
        }
        let w = MmdbWriter::new("Sizes", 6).with_min_record_size(30);
        assert!(matches!(w.to_bytes(), Err(MmdbError::UnsupportedRecordSize(30))));
    }

    #[test]
    fn errors() {
        let mut w = MmdbWriter::new("Bad", 5);
        assert!(matches!(
            w.insert(net("192.0.2.0/24"), Value::Bool(true)),
            Err(MmdbError::UnsupportedIpVersion(5))
        ));
        assert!(matches!(w.to_bytes(), Err(MmdbError::UnsupportedIpVersion(5))));
        let mut w = MmdbWriter::new("Dup", 6);
        let dup = Value::Map(vec![("a".into(), Value::Bool(true)), ("a".into(), Value::Bool(false))]);
        assert!(matches!(
            w.insert(net("192.0.2.0/24"), dup),
            Err(MmdbError::DuplicateKey(k)) if k == "a"
        ));
    }

    #[test]
    fn whole_address_space_and_empty_database() {
        let mut w = MmdbWriter::new("All", 4).with_build_epoch(1);
        w.insert(net("0.0.0.0/0"), Value::U16(1)).unwrap();
        let reader = Reader::from_source(w.to_bytes().unwrap()).unwrap();
        reader.verify().unwrap();
        let v: Option<u16> = reader.lookup(ip("203.0.113.1")).unwrap().decode().unwrap();
        assert_eq!(v, Some(1));

        let empty = MmdbWriter::new("Empty", 6).with_build_epoch(1);
        let reader = Reader::from_source(empty.to_bytes().unwrap()).unwrap();
        assert!(!reader.lookup(ip("203.0.113.1")).unwrap().has_data());
    }

    #[test]
    fn output_is_deterministic() {
        let build = || {
            let mut w = MmdbWriter::new("Det", 6).with_build_epoch(42);
            w.insert(net("192.0.2.0/24"), city("X", 1.0)).unwrap();
            w.insert(net("2001:db8::/48"), city("Y", 2.0)).unwrap();
            w.to_bytes().unwrap()
        };
        assert_eq!(build(), build());
    }
}
