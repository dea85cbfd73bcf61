//! The bookings table and the compact pieces of a booking record.
//!
//! Bookings are kept by number in chunks of [`CHUNK`] consecutive numbers, each chunk shared
//! copy-on-write. Cloning the table copies one pointer per chunk, so a snapshot takes its copy
//! of a state with a million bookings in well under a millisecond and encodes it while apply
//! goes on; apply then copies only the chunks it changes while that copy lives (new bookings
//! all land in the last one). A chunk holds only the bookings present, sorted by number, so a
//! cancelled booking or an ended hold costs nothing once removed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::BookingRecord;

/// Booking numbers per chunk: a power of two, so that a number's place in its chunk fits a
/// `u16`.
const CHUNK_BITS: u32 = 10;
const CHUNK: u64 = 1 << CHUNK_BITS;

/// Bookings by number, ascending. Serialized exactly as a `BTreeMap<u64, BookingRecord>`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Bookings {
    chunks: BTreeMap<u64, Arc<Chunk>>,
    len: usize,
}

/// The bookings present among `CHUNK` consecutive numbers, by their place in the chunk.
#[derive(Clone, Default, PartialEq, Eq)]
struct Chunk {
    /// Ascending.
    places: Vec<u16>,
    records: Vec<BookingRecord>,
}

fn split(number: u64) -> (u64, u16) {
    // The mask keeps the place below CHUNK, which fits a u16.
    (number >> CHUNK_BITS, (number & (CHUNK - 1)) as u16)
}

impl Chunk {
    fn find(&self, place: u16) -> Result<usize, usize> {
        self.places.binary_search(&place)
    }
}

impl Bookings {
    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }

    pub fn get(&self, number: u64) -> Option<&BookingRecord> {
        let (chunk, place) = split(number);
        let chunk = self.chunks.get(&chunk)?;
        chunk.find(place).ok().map(|i| &chunk.records[i])
    }

    pub fn contains(&self, number: u64) -> bool {
        self.get(number).is_some()
    }

    /// The booking to change; its chunk is copied first if a snapshot still shares it.
    pub fn get_mut(&mut self, number: u64) -> Option<&mut BookingRecord> {
        let (chunk, place) = split(number);
        let chunk = self.chunks.get_mut(&chunk)?;
        let i = chunk.find(place).ok()?;
        Arc::make_mut(chunk).records.get_mut(i)
    }

    /// Puts `record` at `number`, returning the booking it replaces.
    pub fn insert(&mut self, number: u64, record: BookingRecord) -> Option<BookingRecord> {
        let (chunk, place) = split(number);
        let chunk = Arc::make_mut(self.chunks.entry(chunk).or_default());
        // New bookings take the next number, so they go at the end.
        if chunk.places.last().is_none_or(|&last| last < place) {
            chunk.places.push(place);
            chunk.records.push(record);
            self.len += 1;
            return None;
        }
        match chunk.find(place) {
            Ok(i) => Some(std::mem::replace(&mut chunk.records[i], record)),
            Err(i) => {
                chunk.places.insert(i, place);
                chunk.records.insert(i, record);
                self.len += 1;
                None
            }
        }
    }

    pub fn remove(&mut self, number: u64) -> Option<BookingRecord> {
        let (key, place) = split(number);
        let shared = self.chunks.get_mut(&key)?;
        let i = shared.find(place).ok()?;
        let chunk = Arc::make_mut(shared);
        chunk.places.remove(i);
        let record = chunk.records.remove(i);
        if chunk.records.is_empty() {
            self.chunks.remove(&key);
        }
        self.len -= 1;
        Some(record)
    }

    /// Every booking with its number, ascending.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (u64, &BookingRecord)> + '_ {
        self.chunks.iter().flat_map(|(&key, chunk)| {
            let base = key << CHUNK_BITS;
            chunk
                .places
                .iter()
                .zip(&chunk.records)
                .map(move |(&place, record)| (base | u64::from(place), record))
        })
    }

    /// Whether `self` and `other` share every chunk: what a fresh clone does.
    #[cfg(test)]
    fn shares_all_with(&self, other: &Bookings) -> bool {
        self.chunks.len() == other.chunks.len()
            && self
                .chunks
                .values()
                .zip(other.chunks.values())
                .all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

impl fmt::Debug for Bookings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Bookings {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len))?;
        for (number, record) in self.iter() {
            map.serialize_entry(&number, record)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Bookings {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(BookingsVisitor)
    }
}

struct BookingsVisitor;

impl<'de> Visitor<'de> for BookingsVisitor {
    type Value = Bookings;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bookings by number")
    }

    /// Each name is decoded into an allocation of its own; the records share one per name
    /// again, as they did before they were encoded.
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Bookings, A::Error> {
        let mut names = Names::default();
        let mut bookings = Bookings::default();
        while let Some((number, mut record)) = access.next_entry::<u64, BookingRecord>()? {
            record.user = names.intern(&record.user);
            record.event = names.intern(&record.event);
            if bookings.insert(number, record).is_some() {
                return Err(serde::de::Error::custom(format!(
                    "booking {number} is there twice"
                )));
            }
        }
        Ok(bookings)
    }
}

/// One shared copy of each user and event name the bookings refer to. A cache of the state,
/// not a part of it: it is not encoded, and two states are equal whatever their caches hold.
#[derive(Clone, Default)]
pub struct Names(BTreeSet<Arc<str>>);

impl Names {
    pub fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(shared) = self.0.get(name) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(name);
        self.0.insert(shared.clone());
        shared
    }
}

impl PartialEq for Names {
    fn eq(&self, _: &Names) -> bool {
        true
    }
}

impl Eq for Names {}

impl fmt::Debug for Names {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Names({})", self.0.len())
    }
}

/// A booking's seats, by dense index in the order asked for: one seat (the common case) kept
/// inline, more in one allocation. Serialized as a sequence, like a `Vec<u32>`.
#[derive(Clone, PartialEq, Eq)]
pub enum SeatList {
    One(u32),
    Many(Box<[u32]>),
}

impl SeatList {
    /// Keeps the seats for which `keep` is true, in order.
    pub fn retain(&mut self, keep: impl FnMut(&u32) -> bool) {
        let kept: Vec<u32> = self.iter().copied().filter(keep).collect();
        *self = SeatList::from(kept);
    }
}

impl From<Vec<u32>> for SeatList {
    fn from(seats: Vec<u32>) -> SeatList {
        match seats.as_slice() {
            [one] => SeatList::One(*one),
            _ => SeatList::Many(seats.into_boxed_slice()),
        }
    }
}

impl std::ops::Deref for SeatList {
    type Target = [u32];

    fn deref(&self) -> &[u32] {
        match self {
            SeatList::One(one) => std::slice::from_ref(one),
            SeatList::Many(many) => many,
        }
    }
}

impl fmt::Debug for SeatList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for SeatList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SeatList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<u32>::deserialize(deserializer).map(SeatList::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::BookingStatus;

    fn record(user: &str, seats: Vec<u32>) -> BookingRecord {
        BookingRecord {
            event: Arc::from("hall"),
            user: Arc::from(user),
            seats: SeatList::from(seats),
            created_at_ms: 7,
            status: BookingStatus::Confirmed,
            total_minor: 100,
            payment_ref: Some("pay_1".into()),
        }
    }

    /// A table and the `BTreeMap` it replaces, filled alike: numbers across several chunks,
    /// with holes, some out of order.
    fn both() -> (Bookings, BTreeMap<u64, BookingRecord>) {
        let (mut table, mut map) = (Bookings::default(), BTreeMap::new());
        let numbers = (1..3_000)
            .filter(|n| n % 7 != 0)
            .chain([5_000, 4_096, 4_095]);
        for n in numbers {
            let r = record(if n % 2 == 0 { "ana" } else { "bo" }, vec![n as u32, 1]);
            assert_eq!(table.insert(n, r.clone()), map.insert(n, r));
        }
        (table, map)
    }

    /// Goal: the table behaves as the ordered map it replaced, through inserts, replacements,
    /// removals (an emptied chunk included) and lookups.
    #[test]
    fn the_table_behaves_as_an_ordered_map() {
        let (mut table, mut map) = both();
        let replaced = record("cy", vec![9]);
        assert_eq!(table.insert(10, replaced.clone()), map.insert(10, replaced));
        for n in (1..1_100).chain([4_095, 4_096, 5_000, 6_000]) {
            assert_eq!(table.remove(n), map.remove(&n), "remove {n}");
        }
        assert_eq!(table.len(), map.len());
        for n in 0..6_000 {
            assert_eq!(table.get(n), map.get(&n), "get {n}");
            assert_eq!(table.contains(n), map.contains_key(&n));
        }
        let listed: Vec<(u64, &BookingRecord)> = table.iter().collect();
        let expected: Vec<(u64, &BookingRecord)> = map.iter().map(|(&n, r)| (n, r)).collect();
        assert_eq!(listed, expected);
        assert_eq!(table.iter().next_back().map(|(n, _)| n), Some(2_999));
        if let Some(r) = table.get_mut(2_999) {
            r.total_minor = 1;
        }
        assert_eq!(table.get(2_999).map(|r| r.total_minor), Some(1));
    }

    /// Goal: a table encodes to exactly the bytes of the map it replaced (snapshots and
    /// backups written before it read the same), and decodes back to an equal table whose
    /// records share one allocation per name.
    #[test]
    fn the_table_encodes_as_the_map_did_and_decodes_with_shared_names() {
        let (table, map) = both();
        let bytes = postcard::to_allocvec(&table).expect("encode");
        assert_eq!(bytes, postcard::to_allocvec(&map).expect("encode the map"));
        let back: Bookings = postcard::from_bytes(&bytes).expect("decode");
        assert_eq!(back, table);
        let anas: Vec<&Arc<str>> = back
            .iter()
            .map(|(_, r)| &r.user)
            .filter(|u| &***u == "ana")
            .collect();
        assert!(anas.len() > 1000);
        assert!(anas.iter().all(|u| Arc::ptr_eq(u, anas[0])));
    }

    /// Goal: a clone shares every chunk (a snapshot's copy costs a pointer per chunk), and a
    /// change after it reaches only the table changed, never the copy.
    #[test]
    fn a_clone_shares_chunks_until_either_side_changes() {
        let (mut table, _) = both();
        let copy = table.clone();
        assert!(table.shares_all_with(&copy));
        let before = copy.get(3).cloned();
        if let Some(r) = table.get_mut(3) {
            r.seats.retain(|&s| s != 1);
        }
        table.remove(4);
        table.insert(9_000, record("dee", vec![1]));
        assert!(!table.shares_all_with(&copy));
        assert_eq!(copy.get(3).cloned(), before);
        assert!(copy.contains(4) && !table.contains(4));
        assert!(!copy.contains(9_000));
        assert_eq!(table.get(3).map(|r| r.seats.to_vec()), Some(vec![3]));
    }

    /// Goal: one seat is kept inline and the list is as small as a boxed slice; a list is a
    /// sequence of indices on the wire.
    #[test]
    fn a_seat_list_is_compact_and_encodes_as_a_vec() {
        assert_eq!(std::mem::size_of::<SeatList>(), 16);
        for seats in [vec![], vec![4], vec![4, 2, 9]] {
            let list = SeatList::from(seats.clone());
            assert_eq!(&*list, seats.as_slice());
            let bytes = postcard::to_allocvec(&list).expect("encode");
            assert_eq!(bytes, postcard::to_allocvec(&seats).expect("encode"));
            let back: SeatList = postcard::from_bytes(&bytes).expect("decode");
            assert_eq!(back, list);
        }
        let mut list = SeatList::from(vec![4, 2, 9]);
        list.retain(|&s| s != 2);
        assert_eq!(&*list, &[4, 9]);
        list.retain(|&s| s == 9);
        assert_eq!(list, SeatList::One(9));
        list.retain(|_| false);
        assert!(list.is_empty());
    }
}
