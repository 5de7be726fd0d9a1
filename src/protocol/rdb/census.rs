//! The key census: per-database, per-type and per-encoding counts, and the biggest keys,
//! kept as the parser finishes each key.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use super::ops::TYPES;
use super::summary::{BigKey, DbStats, Summary, TypeStats};
use crate::protocol::handshake::printable;

/// The key being read.
#[derive(Debug, Clone, Default)]
struct Key {
    kind: usize,
    encoding: &'static str,
    name: Vec<u8>,
    start: u64,
    elements: u64,
    expires: bool,
}

/// Counts over the keys read so far.
#[derive(Debug, Default)]
pub(super) struct Census {
    db: u64,
    dbs: BTreeMap<u64, DbStats>,
    resize_keys: u64,
    types: [TypeStats; 9],
    /// Per encoding name; a handful of static names, found by address first (a per-key
    /// `BTreeMap` of strings cost a string compare or three per key).
    encodings: Vec<(&'static str, u64)>,
    /// The key being read (`active`); kept between keys so its name buffer is reused.
    key: Key,
    active: bool,
    top_n: usize,
    /// The biggest keys so far, smallest on top.
    heap: BinaryHeap<Reverse<BigKey>>,
}

impl Census {
    pub(super) fn new(top_n: usize) -> Census {
        Census {
            top_n,
            ..Census::default()
        }
    }

    /// Keys read so far, and the keys the `RESIZEDB` hints of the databases reached so far
    /// announce (none for an RDB without hints).
    pub(super) fn keys_so_far(&self) -> (u64, Option<u64>) {
        let read = self.dbs.values().map(|d| d.keys).sum();
        let hinted = self
            .dbs
            .values()
            .filter_map(|d| d.resize_hint)
            .map(|(k, _)| k);
        let hinted: Vec<u64> = hinted.collect();
        (read, (!hinted.is_empty()).then(|| hinted.iter().sum()))
    }

    /// `SELECTDB`.
    pub(super) fn select_db(&mut self, db: u64) {
        self.db = db;
        self.dbs.entry(db).or_default();
    }

    /// The first half of `RESIZEDB`: the keys announced.
    pub(super) fn resize_keys(&mut self, keys: u64) {
        self.resize_keys = keys;
    }

    /// The second half of `RESIZEDB`: the expires announced.
    pub(super) fn resize_expires(&mut self, expires: u64) {
        let db = self.dbs.entry(self.db).or_default();
        db.resize_hint = Some((self.resize_keys, expires));
    }

    /// A key of logical type `kind` (an index into `TYPES`) begins at byte `start`.
    pub(super) fn begin(&mut self, kind: usize, encoding: &'static str, start: u64, expires: bool) {
        let k = &mut self.key;
        (k.kind, k.encoding, k.start, k.expires, k.elements) = (kind, encoding, start, expires, 0);
        k.name.clear();
        self.active = true;
    }

    /// The key's name (its first bytes).
    pub(super) fn name(&mut self, name: &[u8]) {
        if self.active {
            self.key.name.clear();
            self.key.name.extend_from_slice(name);
        }
    }

    /// The key has `n` more elements.
    pub(super) fn elements(&mut self, n: u64) {
        if self.active {
            self.key.elements = self.key.elements.saturating_add(n);
        }
    }

    /// The key ended just before byte `end`.
    pub(super) fn end(&mut self, end: u64) {
        if !std::mem::replace(&mut self.active, false) {
            return;
        }
        let key = &self.key;
        let bytes = end.saturating_sub(key.start);
        let db = self.dbs.entry(self.db).or_default();
        db.keys += 1;
        if key.expires {
            db.expires += 1;
        }
        let t = &mut self.types[key.kind];
        t.keys += 1;
        t.elements = t.elements.saturating_add(key.elements);
        t.bytes += bytes;
        match self
            .encodings
            .iter_mut()
            .find(|(e, _)| std::ptr::eq(*e, key.encoding) || *e == key.encoding)
        {
            Some((_, n)) => *n += 1,
            None => self.encodings.push((key.encoding, 1)),
        }
        let smallest = self.heap.peek().map_or(0, |Reverse(k)| k.bytes);
        if self.top_n > 0 && (self.heap.len() < self.top_n || bytes > smallest) {
            self.heap.push(Reverse(BigKey {
                bytes,
                db: self.db,
                key: printable(&key.name, 64),
                kind: TYPES[key.kind],
                encoding: key.encoding,
                elements: key.elements,
            }));
            if self.heap.len() > self.top_n {
                self.heap.pop();
            }
        }
    }

    /// Writes the counts into `s`.
    pub(super) fn fill(&self, s: &mut Summary) {
        s.dbs = self.dbs.clone();
        s.encodings = self.encodings.iter().copied().collect();
        s.types = TYPES
            .iter()
            .zip(&self.types)
            .filter(|(_, t)| t.keys > 0)
            .map(|(name, t)| (*name, t.clone()))
            .collect();
        let mut big: Vec<BigKey> = self.heap.iter().map(|Reverse(k)| k.clone()).collect();
        big.sort_by(|a, b| b.cmp(a));
        s.biggest = big;
    }
}
